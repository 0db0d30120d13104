"""Leaf helpers every layer may use: input errors and atomic writes (``io``), logging, progress,
resource limits, small checks and provenance. Imports nothing else of ser."""
