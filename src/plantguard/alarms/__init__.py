"""Alarm engine (ISA-18.2 states) and notifiers; the first processor on the ingest pipeline."""
