"""What a prediction scores: metrics (UA, WA, macro-F1), bootstrap and fold statistics, the tuning
objective and its aggregation, and ASR word error rates."""
