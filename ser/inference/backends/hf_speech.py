"""wav2vec2-style speech classifier (``AutoModelForAudioClassification``), one checkpoint per fold.

The model (a local directory or hub id) may contain ``{fold}``: every row is scored by its ``model_fold``'s model.
The model's ``id2label`` is mapped to the label set's codes. fp16 on GPU; within a batch, rows
are sorted by duration and run in sub-batches so padding stays small. Padding is used only where it cannot
change a score: a layer-norm feature encoder whose extractor returns an attention mask (wav2vec2-large-lv60
style). A group-norm encoder (wav2vec2-base style, extractor ``return_attention_mask: false``) normalizes over
time, padding included, so such a model batches only utterances of the same length, as Hugging Face advises.
"""

from __future__ import annotations

import numpy as np

from ser.inference.backends import FoldSpeechStage, map_label_names
from ser.inference.backends.hub import locate_model

SPEECH_LABEL_MAP = {"angry": "ang", "anger": "ang", "happy": "hap", "happiness": "hap", "excited": "hap",
                    "neutral": "neu", "sad": "sad", "sadness": "sad"}


def pads_safely(extractor, model) -> bool:
    """Whether padding leaves this checkpoint's scores unchanged: a layer-norm encoder given an attention mask."""
    return bool(getattr(extractor, "return_attention_mask", False)) and \
        getattr(model.config, "feat_extract_norm", "group") == "layer"


def sub_batches(lengths: np.ndarray, size: int, pad: bool) -> list[np.ndarray]:
    """Row indices in sub-batches of at most ``size``, shortest first; without ``pad`` a sub-batch holds one length."""
    by_length = np.argsort(lengths, kind="stable")
    out: list[list[int]] = []
    for i in by_length:
        if out and len(out[-1]) < size and (pad or lengths[out[-1][0]] == lengths[i]):
            out[-1].append(int(i))
        else:
            out.append([int(i)])
    return [np.array(chunk) for chunk in out]


class HFSpeechStage(FoldSpeechStage):
    def __init__(self, model: str, classes: tuple[str, ...], revision: str | None = None,
                 label_map: dict[str, str] | None = None, fp16: bool = True, sub_batch: int = 8,
                 pad_group_norm: bool = False, device: str | None = None, cpu_threads: int | None = None):
        import torch

        super().__init__(model, classes)
        self.revision = revision
        self.label_map = {**SPEECH_LABEL_MAP, **(label_map or {})}
        self.pad_group_norm = pad_group_norm
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
        lengths = np.array([len(w) for w in waves])
        pad = self.pad_group_norm or pads_safely(extractor, model)
        for chunk in sub_batches(lengths, self.sub_batch, pad):
            inputs = extractor([waves[i] for i in chunk], sampling_rate=16000, padding=True, return_tensors="pt")
            inputs = {k: v.to(self.device, self.dtype if v.is_floating_point() else v.dtype)
                      for k, v in inputs.items()}
            with torch.inference_mode():
                logits = model(**inputs).logits.float()
            probs[chunk] = torch.softmax(logits, dim=-1).cpu().numpy()[:, order]
        return probs
