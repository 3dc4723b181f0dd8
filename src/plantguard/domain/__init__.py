"""Domain types: the plant model, reading batches, alarms. No I/O and no framework imports beyond pydantic."""
