"""Corpus preparation on miniature fake trees, including the layouts' traps."""

import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from ser.data.corpora import finish_manifest
from ser.data.corpora.demo import LABELS, generate_demo
from ser.data.corpora.iemocap import prepare_iemocap, speaker_of
from ser.data.corpora.manifest import prepare_manifest
from ser.data.corpora.msp_improv import prepare_msp_improv
from ser.config import ConfigError, PrepareConfig, load_config
from ser.inference.prepare import prepare


def write_wav(path, seconds=0.5, sr=16000):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), (0.1 * np.sin(np.arange(int(sr * seconds)) / 10)).astype(np.float32), sr)


def fake_iemocap(root):
    s1 = root / "Session1"
    (s1 / "dialog" / "EmoEvaluation").mkdir(parents=True)
    (s1 / "dialog" / "transcriptions").mkdir(parents=True)
    (s1 / "dialog" / "EmoEvaluation" / "Ses01M_script01_1.txt").write_text(
        "% header\n\n"
        "[6.2901 - 8.2357]\tSes01M_script01_1_F000\tneu\t[2.5000, 2.5000, 2.5000]\n"
        "C-E2:\tNeutral;\t()\n"
        "[10.0100 - 11.3925]\tSes01M_script01_1_M001\texc\t[3.5, 3.5, 3.0]\n"
        "[12.0 - 13.5]\tSes01M_script01_1_F002\tfru\t[2.0, 3.0, 3.0]\n"
        "[14.0 - 15.25]\tSes01M_script01_1_M003\txxx\t[2.0, 3.0, 3.0]\n")
    (s1 / "dialog" / "EmoEvaluation" / "Ses01F_impro02.txt").write_text(
        "[1.0 - 3.0]\tSes01F_impro02_M000\tsad\t[2.0, 2.0, 2.0]\n")
    (s1 / "dialog" / "transcriptions" / "Ses01M_script01_1.txt").write_text(
        "Ses01M_script01_1_F000 [006.2901-008.2357]: Excuse me.\n"
        "Ses01M_script01_1_M001 [010.0100-011.3925]: Do you have your forms?\n")
    for utt in ["Ses01M_script01_1_F000", "Ses01M_script01_1_M001"]:
        write_wav(s1 / "sentences" / "wav" / "Ses01M_script01_1" / f"{utt}.wav")
    return root


def test_iemocap_speaker_trap_label_merge_and_drops(tmp_path):
    df = prepare_iemocap(fake_iemocap(tmp_path))
    assert list(df["utt_id"]) == ["Ses01F_impro02_M000", "Ses01M_script01_1_F000", "Ses01M_script01_1_M001"]
    by = df.set_index("utt_id")
    # dialog Ses01M but utterance suffix F000: spoken by the female actor of session 1
    assert by.loc["Ses01M_script01_1_F000", "speaker"] == "Ses01F"
    assert by.loc["Ses01F_impro02_M000", "speaker"] == "Ses01M"
    assert by.loc["Ses01M_script01_1_M001", "label"] == "hap"          # exc merged into hap
    assert by.loc["Ses01M_script01_1_F000", "transcript"] == "Excuse me."
    assert by.loc["Ses01F_impro02_M000", "transcript"] == ""
    assert by.loc["Ses01M_script01_1_F000", "duration_s"] == pytest.approx(1.9456)
    assert by.loc["Ses01F_impro02_M000", "condition"] == "improvised"
    assert by.loc["Ses01M_script01_1_F000", "path"].endswith("sentences/wav/Ses01M_script01_1/Ses01M_script01_1_F000.wav")
    assert set(df["session"]) == {"Ses01"}


def test_iemocap_configurable_labels_and_bad_ids(tmp_path):
    df = prepare_iemocap(fake_iemocap(tmp_path), {"neu": "neu", "fru": "ang"})
    assert sorted(df["label"]) == ["ang", "neu"]
    with pytest.raises(ValueError, match="does not end in _F### or _M###"):
        speaker_of("Ses01M_script01_1_X000")
    with pytest.raises(ValueError, match="no Session1..Session5"):
        prepare_iemocap(tmp_path / "nothing")


def fake_msp(root):
    (root / "Evaluation").mkdir(parents=True)
    (root / "Evaluation" / "Evalution.txt").write_text(
        "UTD-IMPROV-S01A-F01-S-FM01.avi; A; A:4.0; V:2.0; D:3.0; N:0.0\n"
        "Averaged; rater1; A\n\n"
        "UTD-IMPROV-S02H-M03-R-MF02.avi; H; A:3.0; V:4.2; D:3.0; N:0.0\n"
        "UTD-IMPROV-S03N-F06-P-FM03.avi; X; A:3.0; V:3.0; D:3.0; N:0.0\n"
        "UTD-IMPROV-S04S-M06-T-MF04.avi; S; A:2.0; V:1.5; D:2.0; N:0.0\n")
    write_wav(root / "Audio" / "session1" / "S01A" / "S" / "MSP-IMPROV-S01A-F01-S-FM01.wav", 1.25)
    write_wav(root / "Audio" / "session3" / "S02H" / "R" / "MSP-IMPROV-S02H-M03-R-MF02.wav", 0.75)
    return root


def test_msp_improv_consensus_speakers_sessions(tmp_path):
    df = prepare_msp_improv(fake_msp(tmp_path)).set_index("utt_id")
    assert list(df.index) == ["MSP-IMPROV-S01A-F01-S-FM01", "MSP-IMPROV-S02H-M03-R-MF02", "MSP-IMPROV-S04S-M06-T-MF04"]
    assert list(df["label"]) == ["ang", "hap", "sad"]                 # X (no agreement) dropped
    assert list(df["speaker"]) == ["F01", "M03", "M06"]
    assert list(df["session"]) == ["session1", "session3", "session6"]
    assert list(df["condition"]) == ["improvised", "read", "other"]
    assert df.loc["MSP-IMPROV-S01A-F01-S-FM01", "duration_s"] == pytest.approx(1.25)
    assert np.isnan(df.loc["MSP-IMPROV-S04S-M06-T-MF04", "duration_s"])   # audio missing: recorded later


def test_generic_manifest_csv_and_jsonl(tmp_path):
    write_wav(tmp_path / "a.wav")
    pd.DataFrame({"id": ["u1", "u2"], "file": ["a.wav", "b.wav"], "emo": ["A", "N"], "spk": ["s1", "s2"]}) \
        .to_csv(tmp_path / "m.csv", index=False)
    df = prepare_manifest(tmp_path / "m.csv", {"id": "utt_id", "file": "path", "emo": "label", "spk": "speaker"},
                          labels={"A": "ang", "N": "neu"})
    assert list(df["label"]) == ["ang", "neu"] and df["path"][0] == str(tmp_path / "a.wav")
    assert list(df["corpus"]) == ["m", "m"]
    (tmp_path / "m.jsonl").write_text("\n".join(json.dumps(r) for r in [
        {"utt_id": "x", "path": "a.wav", "label": "sad", "speaker": "s", "corpus": "mine"}]))
    assert prepare_manifest(tmp_path / "m.jsonl")["corpus"][0] == "mine"
    with pytest.raises(ValueError, match=r"missing column\(s\) \['path', 'label'\]"):
        prepare_manifest(tmp_path / "m.csv", {"id": "utt_id"})
    with pytest.raises(ValueError, match=r"label\(s\) \['A'\] are not in the label map"):
        prepare_manifest(tmp_path / "m.csv", {"id": "utt_id", "file": "path", "emo": "label"}, labels={"N": "neu"})


def test_demo_corpus_is_deterministic_and_prepare_assigns_folds(tmp_path):
    a = generate_demo(tmp_path / "a", "demo-b", per_speaker=3)
    b = generate_demo(tmp_path / "b", "demo-b", per_speaker=3)
    pd.testing.assert_frame_equal(a.drop(columns="path"), b.drop(columns="path"))
    wav_a, _ = sf.read(a["path"][0])
    wav_b, _ = sf.read(b["path"][0])
    np.testing.assert_array_equal(wav_a, wav_b)
    df = prepare(PrepareConfig(corpus="demo-a", root=str(tmp_path / "c"), per_speaker=2))
    assert (df["fold"] == df["speaker"]).all() and df["fold"].nunique() == 8
    with pytest.raises(ValueError, match="prepare.corpus: 'timit' is not one of"):
        prepare(PrepareConfig(corpus="timit"))


def test_a_registered_corpus_needs_nothing_else(tmp_path):
    """One ``register`` call: the config accepts the name, ``ser prepare`` runs its parser, then labels and folds."""
    from ser.data.corpora import registry

    def toy(cfg):
        return finish_manifest([{"utt_id": f"u{i}", "corpus": "toy", "path": "x.wav", "label": LABELS[i % 4],
                                 "speaker": f"s{i % 2}"} for i in range(8)], "toy")

    registry.register("toy", "a corpus a test defines", toy)
    try:
        with pytest.raises(ValueError, match="already registered"):
            registry.register("toy", "twice", toy)
        df = prepare(load_config({"prepare": {"corpus": "toy"}}).prepare)
        assert sorted(df["fold"].unique()) == ["s0", "s1"] and len(df) == 8
    finally:
        registry.CORPORA.pop("toy")
    with pytest.raises(ConfigError, match="prepare.corpus: 'toy' is not one of"):
        load_config({"prepare": {"corpus": "toy"}})
