"""Connectors: one folder per protocol, each with its config schema, client adapter and tests."""
