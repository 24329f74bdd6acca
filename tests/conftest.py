"""Fixtures shared by the core's tests."""
