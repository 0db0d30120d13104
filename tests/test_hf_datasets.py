"""ser prepare --corpus hf: a Hugging Face dataset with an Audio column → a manifest (built locally, no download)."""

import io

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from ser.cli import main

EMOTIONS = ["angry", "happy", "neutral", "sad", "surprised"]
MAP = "prepare.labels={angry: ang, happy: hap, neutral: neu, sad: sad}"


def _wav(seconds: float, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    t = np.arange(int(16000 * seconds)) / 16000
    wave = (0.3 * np.sin(2 * np.pi * (120 + 40 * seed) * t) + 0.02 * rng.normal(size=t.size)).astype(np.float32)
    buffer = io.BytesIO()
    sf.write(buffer, wave, 16000, format="WAV")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """12 utterances of 3 speakers as a saved dataset and as a Parquet folder: one row's bytes are not audio, one
    row is labelled 'surprised' (outside the label set)."""
    import datasets

    root = tmp_path_factory.mktemp("hf")
    labels = [i % 4 for i in range(12)]
    labels[5] = 4
    audio = [{"bytes": _wav(0.8 + 0.1 * i, i), "path": f"clip{i}.wav"} for i in range(12)]
    audio[7] = {"bytes": b"this is not audio", "path": "clip7.wav"}
    encoded = {"bytes": datasets.Value("binary"), "path": datasets.Value("string")}     # as stored: no codec needed
    features = datasets.Features({"audio": encoded, "emotion": datasets.ClassLabel(names=EMOTIONS),
                                  "spk": datasets.Value("string")})
    data = datasets.Dataset.from_dict({"audio": audio, "emotion": labels, "spk": [f"s{i % 3}" for i in range(12)]},
                                      features=features).cast_column("audio", datasets.Audio(decode=False))
    data.save_to_disk(str(root / "saved"))
    (root / "parquet").mkdir()
    data.to_parquet(str(root / "parquet" / "train.parquet"))
    return root


def _prepare(dataset, tmp_path, source: str, *extra: str) -> int:
    return main(["prepare", "--corpus", "hf", "--dataset", str(dataset / source), "--root", str(tmp_path / "audio"),
                 "--label-column", "emotion", "--speaker-column", "spk", "--out", str(tmp_path / "m.parquet"),
                 *extra])


def test_an_unmapped_label_is_named_in_one_line(dataset, tmp_path, capsys):
    assert _prepare(dataset, tmp_path, "saved", "--set", MAP) == 2
    err = capsys.readouterr().err.strip()
    assert "label(s) ['surprised'] in 1 row(s) are not in the label set" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "m.parquet").exists()


@pytest.mark.parametrize("source", ["saved", "parquet"])
def test_a_dataset_becomes_a_manifest_with_its_audio_written_once(dataset, tmp_path, source):
    mapped = MAP.replace("sad: sad}", "sad: sad, surprised: hap}")
    assert _prepare(dataset, tmp_path, source, "--set", mapped) == 0
    manifest = pd.read_parquet(tmp_path / "m.parquet")
    assert len(manifest) == 12 and sorted(manifest["speaker"].unique()) == ["s0", "s1", "s2"]
    assert manifest.set_index("utt_id").loc["train-000005", "label"] == "hap"       # surprised → hap, as mapped
    assert manifest["fold"].nunique() == 3                                          # column:speaker
    first = manifest.set_index("utt_id").loc["train-000000"]
    wave, rate = sf.read(first["path"])
    assert rate == 16000 and len(wave) == int(16000 * 0.8)


@pytest.mark.ray
def test_undecodable_audio_is_recorded_and_the_rest_scored(dataset, tmp_path, ray_session):
    from jobs.infer import run_infer
    from ser.config import load_config

    mapped = MAP.replace("sad: sad}", "sad: sad, surprised: hap}")
    assert _prepare(dataset, tmp_path, "saved", "--set", mapped) == 0
    manifest = pd.read_parquet(tmp_path / "m.parquet")
    cfg = load_config({"infer": {"speech": {"backend": "acoustic"}, "sentiment": {"backend": "vader"}}})
    scores, errors = run_infer(manifest, cfg.infer, cfg.label_set, tmp_path / "out")
    assert list(errors["utt_id"]) == ["train-000007"] and errors["severity"].item() == "error"
    assert len(scores) == 11 and "train-000007" not in set(scores["utt_id"])
