"""wav2vec2-style speech classifier (``AutoModelForAudioClassification``), one checkpoint per fold.

The model (a local directory or hub id) may contain ``{fold}``: every row is scored by its ``model_fold``'s model.
The model's ``id2label`` is mapped to the label set's codes. fp16 on GPU; within a batch, rows
are sorted by duration and run in sub-batches so padding stays small.
"""

from __future__ import annotations

import numpy as np

from ser.backends import FoldSpeechStage, map_label_names
from ser.backends.hub import locate_model

SPEECH_LABEL_MAP = {"angry": "ang", "anger": "ang", "happy": "hap", "happiness": "hap", "excited": "hap",
                    "neutral": "neu", "sad": "sad", "sadness": "sad"}


class HFSpeechStage(FoldSpeechStage):
    def __init__(self, model: str, classes: tuple[str, ...], revision: str | None = None,
                 label_map: dict[str, str] | None = None, fp16: bool = True, sub_batch: int = 8,
                 device: str | None = None, cpu_threads: int | None = None):
        import torch

        super().__init__(model, classes)
        self.revision = revision
        self.label_map = {**SPEECH_LABEL_MAP, **(label_map or {})}
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.dtype = torch.float16 if fp16 and self.device.startswith("cuda") else torch.float32
        on_cpu = not self.device.startswith("cuda")
        # on a CPU batching buys no speed and padding is pure extra work (measured: 20% of frames at 2–12 s)
        self.sub_batch = 1 if on_cpu else sub_batch
        if on_cpu and cpu_threads:
            torch.set_num_threads(cpu_threads)

    def load(self, fold: str):
        from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

        path = locate_model(self.model_for(fold), f"speech model for fold '{fold}'")
        extractor = AutoFeatureExtractor.from_pretrained(path, revision=self.revision)
        model = AutoModelForAudioClassification.from_pretrained(path, revision=self.revision, dtype=self.dtype)
        model.to(self.device).eval()
        names = [model.config.id2label[i] for i in range(model.config.num_labels)]
        codes = map_label_names(names, self.label_map, self.classes, f"speech model {path}")
        return extractor, model, [codes.index(c) for c in self.classes]

    def score(self, loaded, waves: list[np.ndarray]) -> np.ndarray:
        """Sub-batches of similar length (sorted by duration) keep padding small."""
        import torch

        extractor, model, order = loaded
        probs = np.empty((len(waves), len(self.classes)))
        by_length = np.argsort([len(w) for w in waves], kind="stable")
        for start in range(0, len(waves), self.sub_batch):
            chunk = by_length[start:start + self.sub_batch]
            inputs = extractor([waves[i] for i in chunk], sampling_rate=16000, padding=True, return_tensors="pt",
                               return_attention_mask=True)
            inputs = {k: v.to(self.device, self.dtype if v.is_floating_point() else v.dtype)
                      for k, v in inputs.items()}
            with torch.inference_mode():
                logits = model(**inputs).logits.float()
            probs[chunk] = torch.softmax(logits, dim=-1).cpu().numpy()[:, order]
        return probs
