"""Pytest plugin module; fixtures are defined below."""
