"""Helpers for tests and benchmarks: tiny locally built models (no downloads)."""
