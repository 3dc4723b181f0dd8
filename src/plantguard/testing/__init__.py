"""Helpers for tests and benchmarks: real Mosquitto and PostgreSQL servers on free loopback ports, small plants."""
