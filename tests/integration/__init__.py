"""Integration tests: real components, started by the fixtures in conftest.py."""
