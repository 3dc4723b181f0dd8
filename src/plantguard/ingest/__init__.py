"""The one ingest pipeline every source feeds: parse -> validate -> dedupe -> durable write -> processors."""
