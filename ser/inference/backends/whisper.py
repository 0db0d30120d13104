"""ASR stage with faster-whisper (CTranslate2).

Utterances up to the model's window (30 s for every released Whisper) are transcribed in true cross-utterance
batches: log-mel features padded to the window are stacked and decoded in one ``generate`` call (what the GPU
needs); longer ones, or any when ``vad_filter`` is on, go through ``WhisperModel.transcribe``. Blank results are ''.

Both paths decode with one set of options (:data:`DECODING`): no timestamps, one temperature (0: greedy or beam
search, no sampled fallback), the same suppressed tokens, no segment dropped by no-speech or compression tests,
and the same features (``transcribe`` drops the extractor's last frame, so the batched path does too). An
utterance therefore gets the same transcript whichever path, and whichever batch, it goes through, and a rerun
gets the same transcript: ``transcribe``'s temperature fallback samples, which would not be reproducible.
"""

from __future__ import annotations

import logging

import numpy as np

from ser.inference.backends import Batch, text_rows, usable

log = logging.getLogger(__name__)

TRANSCRIBE_FRAMES = 3000
"""The only window ``WhisperModel.transcribe`` decodes (``faster_whisper.audio.pad_or_trim``'s fixed length: 30 s)."""
DECODING = {"without_timestamps": True, "temperature": 0.0, "condition_on_previous_text": False,
            "compression_ratio_threshold": None, "log_prob_threshold": None, "no_speech_threshold": None,
            "suppress_blank": True, "suppress_tokens": [-1]}
"""``WhisperModel.transcribe`` options; the batched path's ``generate`` call is made to decode the same way."""


def _window_features(mels: list[np.ndarray], frames: int) -> np.ndarray:
    """Log-mel features (n_mels, T) → one float32 batch (n, n_mels, ``frames``), zero-padded or cut to the 30 s
    window as ``faster_whisper.audio.pad_or_trim`` does, written in place (no padded copies to stack and convert:
    at 3,000 frames they cost a third of a tiny model's time)."""
    out = np.zeros((len(mels), mels[0].shape[0], frames), dtype=np.float32)
    for i, mel in enumerate(mels):
        out[i, :, :min(mel.shape[1], frames)] = mel[:, :frames]
    return out


class WhisperStage:
    def __init__(self, model: str, revision: str | None = None, language: str | None = "en", beam_size: int = 1,
                 vad_filter: bool = False, compute_type: str = "default", device: str | None = None,
                 sub_batch: int = 8, cpu_threads: int | None = None, target: str = "transcript", label: str | None = None):
        from faster_whisper import WhisperModel

        import ctranslate2

        self.device = device or ("cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu")
        self.model = WhisperModel(model, device=self.device, compute_type=compute_type, revision=revision,
                                  cpu_threads=cpu_threads or 0)
        self.model_name = label or model              # what transcript_source records (asr:<name>)
        self.language, self.beam_size, self.vad_filter, self.sub_batch = language, beam_size, vad_filter, sub_batch
        # the primary path writes transcript/transcript_source, a further path transcript:NAME/transcript_source:NAME
        self.target, self.source_column = target, target.replace("transcript", "transcript_source", 1)
        features = self.model.feature_extractor
        self.window_samples = features.n_samples       # 30 s, or a test model's shorter window
        self.transcribes = features.nb_max_frames == TRANSCRIBE_FRAMES
        if vad_filter and not self.transcribes:
            raise ValueError(f"ASR model {model}: vad_filter needs faster-whisper's transcribe, which decodes only "
                             f"30 s windows, and this model's window is {features.chunk_length} s")
        self.warned_trim = False

    def _batched(self, waves: list[np.ndarray]) -> list[str]:
        import ctranslate2
        from faster_whisper.tokenizer import Tokenizer
        from faster_whisper.transcribe import get_suppressed_tokens

        m = self.model
        tokenizer = Tokenizer(m.hf_tokenizer, m.model.is_multilingual, task="transcribe",
                              language=self.language if m.model.is_multilingual else None)
        feats = _window_features([m.feature_extractor(w)[:, :-1] for w in waves], m.feature_extractor.nb_max_frames)
        prompt = tokenizer.sot_sequence + [tokenizer.no_timestamps]
        suppressed = list(get_suppressed_tokens(tokenizer, list(DECODING["suppress_tokens"])))
        results = m.model.generate(ctranslate2.StorageView.from_array(feats), [prompt] * len(waves),
                                   beam_size=self.beam_size, max_length=m.max_length,
                                   suppress_blank=DECODING["suppress_blank"], suppress_tokens=suppressed)
        return [tokenizer.decode(r.sequences_ids[0]).strip() for r in results]

    def _unbatched(self, wave: np.ndarray) -> str:
        """A clip the batched path does not take (longer than the window, or any with ``vad_filter``):
        ``transcribe``, or, for a model whose window is not the 30 s ``transcribe`` can decode (ser's offline test
        model, which refuses ``vad_filter``), its first window, with one warning."""
        if self.transcribes:
            return self._one(wave)
        if not self.warned_trim:
            log.warning(f"ASR model {self.model_name}: its {self.model.feature_extractor.chunk_length} s window is "
                        f"not the 30 s faster-whisper's transcribe decodes: longer clips are transcribed from their "
                        f"first window only")
            self.warned_trim = True
        return self._batched([wave[:self.window_samples]])[0]

    def _one(self, wave: np.ndarray) -> str:
        segments, _ = self.model.transcribe(wave, language=self.language, beam_size=self.beam_size,
                                            vad_filter=self.vad_filter, **DECODING)
        return " ".join(s.text.strip() for s in segments).strip()

    def __call__(self, batch: Batch) -> Batch:
        n = len(batch["path"])
        text = np.full(n, "", dtype=object)
        ok = np.flatnonzero(usable(batch) & text_rows(batch))
        short = [i for i in ok if len(batch["audio"][i]) <= self.window_samples and not self.vad_filter]
        short.sort(key=lambda i: len(batch["audio"][i]))
        for start in range(0, len(short), self.sub_batch):
            chunk = short[start:start + self.sub_batch]
            for i, t in zip(chunk, self._batched([batch["audio"][i] for i in chunk])):
                text[i] = t
        for i in sorted(set(ok) - set(short)):
            text[i] = self._unbatched(batch["audio"][i])
        return {**batch, self.target: text,
                self.source_column: np.full(n, f"asr:{self.model_name}", dtype=object)}
