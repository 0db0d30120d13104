"""ser: entropy-aware multimodal speech emotion recognition, evaluated and tuned at scale."""

__version__ = "0.1.0"
