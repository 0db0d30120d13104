"""MSP-IMPROV: consensus labels from Evalution.txt, audio under Audio/session<N>/.../*.wav.

File names ``MSP-IMPROV-S01A-F01-S-FM01``: sentence 01 with target emotion A, spoken by the
female actor of session 1 (speaker F01), in condition S. Consensus codes A/H/N/S map to
ang/hap/neu/sad; other codes (O, X) are dropped. 6 sessions, 12 speakers.
Conditions: R read, S improvised (target sentence), P natural interaction, T other improvised turns.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from ser.data.corpora import corpus_root, finish_manifest
from ser._util.io import InputError

if TYPE_CHECKING:
    from ser.config import PrepareConfig

log = logging.getLogger(__name__)

DEFAULT_LABEL_MAP = {"A": "ang", "H": "hap", "N": "neu", "S": "sad"}
CONDITIONS = {"R": "read", "S": "improvised", "P": "natural", "T": "other"}
_NAME = re.compile(r"MSP-IMPROV-S(?P<sentence>\d\d)(?P<target>[A-Z])-(?P<speaker>(?P<gender>[FM])(?P<session>\d\d))"
                   r"-(?P<cond>[A-Z])-(?P<rest>\w+)")
_EVAL = re.compile(r"^(?:UTD|MSP)-IMPROV-(?P<id>S\d\d[A-Z]-[FM]\d\d-[A-Z]-\w+)\.\w+;\s*(?P<label>[A-Z])\s*;")


def read_consensus(root: Path) -> dict[str, str]:
    """Utterance id → consensus code, from Evalution.txt (the corpus' spelling) or Evaluation.txt."""
    for name in ("Evalution.txt", "Evaluation.txt"):
        hits = list(root.rglob(name))
        if hits:
            labels = {}
            for line in hits[0].read_text(errors="replace").splitlines():
                m = _EVAL.match(line.strip())
                if m:
                    labels[f"MSP-IMPROV-{m['id']}"] = m["label"]
            return labels
    raise InputError(f"MSP-IMPROV root {root} has no Evalution.txt / Evaluation.txt")


def prepare_msp_improv(root: str | Path, label_map: dict[str, str] | None = None) -> pd.DataFrame:
    """Manifest of the utterances whose consensus label ``label_map`` keeps."""
    import soundfile as sf

    root = Path(root)
    label_map = label_map or DEFAULT_LABEL_MAP
    consensus = read_consensus(root)
    wavs = {p.stem: p for p in root.rglob("*.wav")}
    rows, unreadable = [], []
    for utt, code in sorted(consensus.items()):
        if code not in label_map:
            continue
        m = _NAME.fullmatch(utt)
        if not m:
            raise InputError(f"MSP-IMPROV: cannot parse utterance id '{utt}'")
        path = wavs.get(utt)
        duration = float("nan")
        if path:
            try:
                duration = float(sf.info(str(path)).duration)
            except (RuntimeError, OSError, ValueError):   # soundfile's LibsndfileError is a RuntimeError
                unreadable.append(path)
        rows.append({
            "utt_id": utt, "corpus": "msp_improv", "label": label_map[code],
            "path": str(path) if path else str(root / "Audio" / f"{utt}.wav"),
            "speaker": m["speaker"], "session": f"session{int(m['session'])}", "gender": m["gender"],
            "duration_s": duration, "transcript": "", "condition": CONDITIONS.get(m["cond"], m["cond"]),
        })
    if unreadable:
        shown = ", ".join(str(p) for p in unreadable[:3]) + (" …" if len(unreadable) > 3 else "")
        if len(unreadable) == sum(1 for r in rows if r["utt_id"] in wavs):
            raise InputError(f"MSP-IMPROV: none of the {len(unreadable)} WAV files under {root} is readable "
                             f"audio ({shown})")
        log.warning(f"MSP-IMPROV: {len(unreadable)} WAV file(s) are not readable audio ({shown}); kept in the "
                    f"manifest without a duration, and `ser infer` records them in errors.parquet")
    return finish_manifest(rows, "msp_improv")


def from_config(cfg: "PrepareConfig") -> pd.DataFrame:
    """The registered parser: ``prepare.root`` is the corpus directory."""
    return prepare_msp_improv(corpus_root(cfg), cfg.labels)
