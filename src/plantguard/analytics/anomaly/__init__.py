"""Anomaly detectors with one contract; see base.py."""
