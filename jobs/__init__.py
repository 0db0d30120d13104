"""Thin Ray entrypoints over the ser library (infer, tune, sweep, run, submit, bench)."""
