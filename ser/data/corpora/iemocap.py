"""IEMOCAP: Session1..5/dialog/EmoEvaluation/*.txt (labels), sentences/wav (audio), transcriptions.

The 4-class standard set merges ``exc`` into ``hap`` and drops other labels: 5531 utterances.
The speaker of an utterance is its session plus the gender letter that *starts the utterance
suffix*: ``Ses01M_script01_1_F000`` is spoken by the female actor of session 1 (Ses01F), even
though the dialog id names Ses01M.
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

DEFAULT_LABEL_MAP = {"ang": "ang", "hap": "hap", "exc": "hap", "neu": "neu", "sad": "sad"}
STANDARD_4CLASS_SIZE = 5531
_EVAL_LINE = re.compile(r"^\[(?P<start>[\d.]+)\s*-\s*(?P<end>[\d.]+)\]\s+(?P<utt>Ses\d\d[FM]_\S+)\s+(?P<label>\w+)\s+")
_TRANSCRIPT_LINE = re.compile(r"^(?P<utt>Ses\d\d[FM]_\S+)\s+\[[^\]]*\]:\s*(?P<text>.*)$")


def speaker_of(utt_id: str) -> tuple[str, str]:
    """(speaker, gender) from the utterance suffix's leading gender letter, e.g. Ses01M_..._F000 → (Ses01F, F)."""
    gender = utt_id.rsplit("_", 1)[-1][0]
    if gender not in "FM":
        raise InputError(f"IEMOCAP utterance id '{utt_id}' does not end in _F### or _M###")
    return utt_id[:5] + gender, gender


def prepare_iemocap(root: str | Path, label_map: dict[str, str] | None = None) -> pd.DataFrame:
    """Manifest of the labelled utterances kept by ``label_map`` (default: the 4-class standard set)."""
    root = Path(root)
    label_map = label_map or DEFAULT_LABEL_MAP
    sessions = sorted(p for p in root.glob("Session[1-5]") if p.is_dir())
    if not sessions:
        raise InputError(f"IEMOCAP root {root} has no Session1..Session5 directories")
    rows = []
    for session_dir in sessions:
        transcripts = {}
        for tfile in sorted((session_dir / "dialog" / "transcriptions").glob("*.txt")):
            for line in tfile.read_text(errors="replace").splitlines():
                m = _TRANSCRIPT_LINE.match(line.strip())
                if m:
                    transcripts[m["utt"]] = m["text"].strip()
        for efile in sorted((session_dir / "dialog" / "EmoEvaluation").glob("*.txt")):
            for line in efile.read_text(errors="replace").splitlines():
                m = _EVAL_LINE.match(line.strip())
                if not m or m["label"] not in label_map:
                    continue
                utt = m["utt"]
                dialog = utt.rsplit("_", 1)[0]
                speaker, gender = speaker_of(utt)
                rows.append({
                    "utt_id": utt, "corpus": "iemocap", "label": label_map[m["label"]],
                    "path": str(session_dir / "sentences" / "wav" / dialog / f"{utt}.wav"),
                    "speaker": speaker, "session": utt[:5], "gender": gender,
                    "duration_s": round(float(m["end"]) - float(m["start"]), 4),
                    "transcript": transcripts.get(utt, ""),
                    "condition": "improvised" if "_impro" in utt else "scripted",
                })
    return finish_manifest(rows, "iemocap")


def from_config(cfg: "PrepareConfig") -> pd.DataFrame:
    """The registered parser: ``prepare.root`` is the release directory; a set that is not the standard 4-class
    size is warned about (unless ``prepare.labels`` changed the classes)."""
    df = prepare_iemocap(corpus_root(cfg), cfg.labels)
    if cfg.labels is None and len(df) != STANDARD_4CLASS_SIZE:
        log.warning(f"the standard 4-class IEMOCAP set has {STANDARD_4CLASS_SIZE} utterances; found {len(df)}")
    return df
