"""Scoring audio: corpus preparation, audio decoding, the inference pipeline's pure helpers and the model
backends the Ray Data actors run."""
