"""Audio decoding errors, and the model stages run directly (no Ray) on tiny local models."""

import os
import sys

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from ser.inference.audio import AudioError, load_audio
from ser.inference.backends import map_label_names
from ser.inference.backends.audio_stage import load_batch
from ser.inference.backends.sentiment import VaderStage
from ser.testing.tiny_models import build_sentiment, build_wav2vec2, build_whisper


def test_resamples_and_downmixes(tmp_path):
    t = np.arange(22050) / 22050
    stereo = np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 440 * t)], axis=1) * 0.5
    sf.write(str(tmp_path / "s.wav"), stereo, 22050)
    audio = load_audio(tmp_path / "s.wav")
    assert audio.dtype == np.float32 and len(audio) == 16000
    assert np.abs(audio).max() == pytest.approx(0.5, abs=0.02)


@pytest.mark.parametrize("make, message", [
    (lambda p: None, "missing file"),
    (lambda p: p.write_bytes(b"not a wav file at all"), "unreadable audio"),
    (lambda p: sf.write(str(p), np.zeros(0, dtype=np.float32), 16000), "empty audio"),
    (lambda p: sf.write(str(p), np.array([0.1, np.nan, 0.2], dtype=np.float32), 16000, subtype="FLOAT"),
     "non-finite samples"),
])
def test_bad_audio_is_named(tmp_path, make, message):
    path = tmp_path / "x.wav"
    make(path)
    with pytest.raises(AudioError, match=message):
        load_audio(path)


def test_load_batch_records_errors_instead_of_raising(tmp_path):
    sf.write(str(tmp_path / "ok.wav"), np.zeros(8000, dtype=np.float32) + 0.01, 16000)
    out = load_batch({"path": np.array([str(tmp_path / "ok.wav"), str(tmp_path / "gone.wav")], dtype=object)})
    assert out["audio_error"][0] == "" and "missing file" in out["audio_error"][1]
    assert out["duration_s"].tolist() == [0.5, 0.0]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    # fold A's model lists labels in another order and with long names: the stage must map them
    build_wav2vec2(root / "speech-A", ["sad", "neutral", "happy", "angry"], seed=1)
    build_wav2vec2(root / "speech-B", ["ang", "hap", "neu", "sad"], seed=2)
    build_sentiment(root / "sentiment")
    build_whisper(root / "whisper")
    return root


def audio_batch(n=4, folds=("A", "B")):
    rng = np.random.default_rng(0)
    audio = np.empty(n, dtype=object)
    for i in range(n):
        audio[i] = (0.1 * rng.normal(size=int(16000 * (0.4 + 0.2 * i)))).astype(np.float32)
    return {"path": np.array([f"u{i}.wav" for i in range(n)], dtype=object), "audio": audio,
            "audio_error": np.array(["", "", "bad", ""], dtype=object)[:n],
            "model_fold": np.array([folds[i % len(folds)] for i in range(n)], dtype=object),
            "transcript": np.array(["this is great", "", "so bad", "the day"], dtype=object)[:n]}


def test_speech_stage_routes_each_row_to_its_folds_model(tiny):
    import torch
    from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

    from ser.inference.backends.hf_speech import HFSpeechStage

    stage = HFSpeechStage(str(tiny / "speech-{fold}"), ("ang", "hap", "neu", "sad"), sub_batch=2)
    batch = audio_batch()
    out = stage(batch)
    probs = np.stack([out[f"speech_{c}"] for c in ("ang", "hap", "neu", "sad")], axis=1)
    assert np.isnan(probs[2]).all()                                     # decode failure: no scores
    for i, fold, order in ((0, "A", [3, 2, 1, 0]), (1, "B", [0, 1, 2, 3]), (3, "B", [0, 1, 2, 3])):
        path = str(tiny / f"speech-{fold}")
        fe, model = AutoFeatureExtractor.from_pretrained(path), AutoModelForAudioClassification.from_pretrained(path)
        inputs = fe([batch["audio"][i]], sampling_rate=16000, return_tensors="pt")
        with torch.no_grad():
            expect = torch.softmax(model(**inputs).logits, -1).numpy()[0][order]
        np.testing.assert_allclose(probs[i], expect, atol=1e-4)
    ray = sys.modules.get("ray")                       # an earlier test may have started Ray in this process
    if ray is not None and ray.is_initialized():
        assert out["speech_worker"][0].endswith(f":CPU#{os.getpid()}")       # this node, this process
    else:
        assert out["speech_worker"][0] == "local"


def test_missing_fold_model_and_bad_label_names(tiny):
    from ser.inference.backends.hf_speech import SPEECH_LABEL_MAP, HFSpeechStage

    stage = HFSpeechStage(str(tiny / "speech-{fold}"), ("ang", "hap", "neu", "sad"))
    with pytest.raises(FileNotFoundError, match="speech model for fold 'C' not found"):
        stage(audio_batch(folds=("C",)))
    with pytest.raises(ValueError, match="label 'fear' maps to 'fear'"):
        map_label_names(["angry", "fear"], SPEECH_LABEL_MAP, ("ang", "hap"), "speech model x")
    with pytest.raises(ValueError, match="must map one-to-one"):
        map_label_names(["angry", "anger"], SPEECH_LABEL_MAP, ("ang", "hap"), "speech model x")


def test_whisper_and_sentiment_stages(tiny):
    from ser.inference.backends.sentiment import HFSentimentStage
    from ser.inference.backends.whisper import WhisperStage

    batch = audio_batch()
    asr = WhisperStage(str(tiny / "whisper"), sub_batch=2)(batch)
    assert all(isinstance(t, str) for t in asr["transcript"]) and asr["transcript"][2] == ""
    assert asr["transcript_source"][0] == f"asr:{tiny / 'whisper'}"
    sent = HFSentimentStage(str(tiny / "sentiment"))(batch)
    probs = np.stack([sent["text_neg"], sent["text_neu"], sent["text_pos"]], axis=1)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(probs[1], [0, 1, 0])                 # blank transcript → neutral
    assert not np.array_equal(probs[0], probs[3])


def _decoded_lengths(model_dir) -> list[int]:
    """Tokens each of four generated utterances decodes to, through the batched path's own generate call."""
    import ctranslate2
    from faster_whisper import WhisperModel
    from faster_whisper.audio import pad_or_trim
    from faster_whisper.tokenizer import Tokenizer

    m = WhisperModel(str(model_dir), device="cpu")
    tok = Tokenizer(m.hf_tokenizer, m.model.is_multilingual, task="transcribe", language=None)
    waves = [w for w in audio_batch()["audio"]]
    frames = m.feature_extractor.nb_max_frames
    feats = np.stack([pad_or_trim(m.feature_extractor(w), frames) for w in waves]).astype(np.float32)
    out = m.model.generate(ctranslate2.StorageView.from_array(feats), [tok.sot_sequence + [tok.no_timestamps]] * 4,
                           beam_size=1, max_length=m.max_length, suppress_blank=True)
    return [len(r.sequences_ids[0]) for r in out]


def test_batched_whisper_transcripts_equal_transcribe(tmp_path):
    """A tiny random Whisper that decodes words (not timestamps): the batched generate path and
    WhisperModel.transcribe give the same transcript for every clip, in any batch (one set of decoding options)."""
    from ser.inference.backends.whisper import WhisperStage

    stage = WhisperStage(str(build_whisper(tmp_path / "words", seed=2, words=True)), sub_batch=3)
    rng = np.random.default_rng(0)
    waves = [(0.1 * rng.standard_normal(int(16000 * d))).astype(np.float32) for d in (1.5, 3.0, 4.2, 7.9, 2.2, 11.0)]
    batched = stage._batched(waves[:3]) + stage._batched(waves[3:])
    assert batched == [stage._one(w) for w in waves] == [stage._batched([w])[0] for w in waves]
    assert all(len(t.split()) > 10 for t in batched) and len(set(batched)) > 1      # words, and not all alike


def test_whisper_window_features_are_faster_whispers_padding_in_one_float32_batch():
    """The batched path's features: each clip's log-mel zero-padded (or cut) to the 30 s window, as
    faster_whisper's pad_or_trim does, stacked as float32 without the padded copies."""
    from faster_whisper.audio import pad_or_trim

    from ser.inference.backends.whisper import _window_features

    rng = np.random.default_rng(1)
    mels = [rng.standard_normal((80, n)).astype(np.float32) for n in (120, 3000, 3400, 1)]
    out = _window_features(mels, 3000)
    assert out.dtype == np.float32 and out.flags.c_contiguous
    np.testing.assert_array_equal(out, np.stack([pad_or_trim(m) for m in mels]))


def test_the_builtin_tiny_whisper_ends_every_transcript_at_once(tiny, tmp_path):
    """ser:tiny-random (the demo's offline ASR) decodes nothing, where a random model runs to the length limit."""
    from jobs.infer import ensure_builtin_whisper
    from ser.config.backends import TINY_WHISPER
    from ser.inference.backends.whisper import WhisperStage

    builtin = ensure_builtin_whisper(TINY_WHISPER, tmp_path)
    assert _decoded_lengths(builtin) == [0, 0, 0, 0]
    assert min(_decoded_lengths(tiny / "whisper")) > 100
    assert list(WhisperStage(builtin, sub_batch=2)(audio_batch())["transcript"]) == ["", "", "", ""]


def test_a_whisper_with_a_short_window_batches_up_to_it_and_says_what_it_cuts(tmp_path, caplog):
    """The silent tiny Whisper's window is 10 s (its encoder's cost is the window's attention): clips up to it are
    batched, a longer one is transcribed from its first window with one warning (faster-whisper's transcribe
    decodes only 30 s windows), and vad_filter, which needs transcribe, is refused by name."""
    from jobs.infer import ensure_builtin_whisper
    from ser.config.backends import TINY_WHISPER
    from ser.inference.backends.whisper import WhisperStage
    from ser.testing.tiny_models import SILENT_WINDOW_S

    builtin = ensure_builtin_whisper(TINY_WHISPER, tmp_path)
    stage = WhisperStage(builtin, sub_batch=2)
    assert stage.window_samples == SILENT_WINDOW_S * 16000 and not stage.transcribes
    batch = audio_batch()
    batch["audio"][0] = np.zeros(16000 * (SILENT_WINDOW_S + 3), dtype=np.float32)
    batch["audio"][3] = np.zeros(16000 * (SILENT_WINDOW_S + 1), dtype=np.float32)
    with caplog.at_level("WARNING", logger="ser.inference.backends.whisper"):
        assert list(stage(batch)["transcript"]) == ["", "", "", ""]
    assert [r.getMessage() for r in caplog.records] == [
        f"ASR model {builtin}: its {SILENT_WINDOW_S} s window is not the 30 s faster-whisper's transcribe decodes: "
        f"longer clips are transcribed from their first window only"]
    with pytest.raises(ValueError, match="vad_filter needs faster-whisper's transcribe"):
        WhisperStage(builtin, vad_filter=True)


def test_vader_mapping():
    out = VaderStage()({"transcript": np.array(["this is great", "", "i hate it", "the table"], dtype=object)})
    np.testing.assert_array_equal(np.stack([out["text_neg"], out["text_neu"], out["text_pos"]], axis=1),
                                  [[0, 0, 1], [0, 1, 0], [1, 0, 0], [0, 1, 0]])


def test_in_sample_scoring_decodes_each_file_once(tmp_path, monkeypatch):
    """With in-sample rows every fold model scores each utterance; the audio is still decoded once."""
    import ser.inference.backends.audio_stage as audio_stage
    from ser.inference.backends.acoustic import AcousticSpeechStage, acoustic_features, train_fold_models
    from ser.config import PrepareConfig
    from ser.inference.prepare import prepare
    from ser.data.folds import scoring_rows
    from ser.inference.pipeline import group_scorings

    manifest = prepare(PrepareConfig(corpus="demo", root=str(tmp_path / "demo"), per_speaker=3))
    feats = np.stack([acoustic_features(audio_stage.load_audio(p)) for p in manifest["path"]])
    train_fold_models(manifest, str(tmp_path / "m-{fold}.pkl"), ("ang", "hap", "neu", "sad"), feats)
    decoded = []
    real = audio_stage.load_audio
    monkeypatch.setattr(audio_stage, "load_audio", lambda path, sr=16000: decoded.append(path) or real(path, sr))
    rows = scoring_rows(manifest, in_sample=True, val_share=0.3)
    grouped = group_scorings(rows)
    batch = audio_stage.load_batch({c: grouped[c].to_numpy() for c in grouped.columns})
    out = AcousticSpeechStage(str(tmp_path / "m-{fold}.pkl"), ("ang", "hap", "neu", "sad"))(batch)
    assert sorted(decoded) == sorted(manifest["path"])                        # once per file
    got = sorted(zip(out["utt_id"], out["model_fold"], out["split"]))
    assert got == sorted(zip(rows["utt_id"], rows["model_fold"], rows["split"]))   # every scoring row, once
    assert len(rows) == len(manifest) * manifest["fold"].nunique()
    test = out["split"] == "test"
    assert all(len(a) > 0 for a in out["audio"][test]) and all(len(a) == 0 for a in out["audio"][~test])
    assert np.isfinite(np.stack([out[f"speech_{c}"] for c in ("ang", "hap", "neu", "sad")])).all()


def test_acoustic_scoring_reuses_the_training_passs_features(tmp_path, monkeypatch):
    """Features the training pass computed score their rows as they are (the same probabilities as computed from
    the audio, without computing them again); rows without one are featurized from their audio."""
    import ser.inference.backends.acoustic as acoustic
    from ser.config import PrepareConfig
    from ser.inference.backends.audio_stage import load_audio, load_batch
    from ser.inference.prepare import prepare

    classes = ("ang", "hap", "neu", "sad")
    manifest = prepare(PrepareConfig(corpus="demo", root=str(tmp_path / "demo"), per_speaker=2))
    feats = np.stack([acoustic.acoustic_features(load_audio(p)) for p in manifest["path"]])
    acoustic.train_fold_models(manifest, str(tmp_path / "m-{fold}.pkl"), classes, feats)
    rows = manifest.assign(model_fold=manifest["fold"])
    batch = load_batch({c: rows[c].to_numpy() for c in rows.columns})
    computed = acoustic.AcousticSpeechStage(str(tmp_path / "m-{fold}.pkl"), classes)(dict(batch))

    known = dict(zip(manifest["path"][1:], feats[1:]))              # the first row has no stored features
    calls = []
    real = acoustic.acoustic_features
    monkeypatch.setattr(acoustic, "acoustic_features", lambda wave: calls.append(len(wave)) or real(wave))
    reused = acoustic.AcousticSpeechStage(str(tmp_path / "m-{fold}.pkl"), classes, features=known)(dict(batch))
    assert calls == [len(batch["audio"][0])]                          # only the row without features
    for c in classes:
        np.testing.assert_array_equal(reused[f"speech_{c}"], computed[f"speech_{c}"])

    swapped = {**known, manifest["path"][1]: feats[2]}                # a stored vector is what the row is scored by
    out = acoustic.AcousticSpeechStage(str(tmp_path / "m-{fold}.pkl"), classes, features=swapped)(dict(batch))
    model = acoustic.AcousticSpeechStage(str(tmp_path / "m-{fold}.pkl"), classes).load(manifest["fold"][1])
    np.testing.assert_allclose([out[f"speech_{c}"][1] for c in classes],
                               model.predict_proba(feats[2][None])[0][[list(model.classes_).index(c) for c in classes]])


def test_scorings_round_trip_fold_ids_that_look_like_separators():
    from ser.inference.backends import expand_scorings
    from ser.inference.pipeline import group_scorings

    rows = pd.DataFrame({"corpus": "c", "utt_id": ["u1", "u1", "u2"], "path": ["a", "a", "b"],
                         "model_fold": ["f=1;x", "/../g", "f=1;x"], "split": ["test", "train", "val"]})
    grouped = group_scorings(rows)
    assert len(grouped) == 2
    out = expand_scorings({c: grouped[c].to_numpy() for c in grouped.columns})
    assert sorted(zip(out["utt_id"], out["model_fold"], out["split"])) == \
        sorted(zip(rows["utt_id"], rows["model_fold"], rows["split"]))


def test_utterances_go_to_the_actors_longest_work_first(tmp_path):
    """Work = length x fold models scoring it; length from duration_s when every row has one, else the file's
    size (a missing file counts as empty); ties keep the manifest's order."""
    from ser.inference.pipeline import longest_first

    rows = pd.DataFrame({"utt_id": ["a", "b", "c", "d"], "duration_s": [2.0, 5.0, 3.0, 2.0],
                         "scorings": ["f1=test", "f1=test", "f1=test;f2=train", "f2=test"],
                         "path": ["", "", "", ""]})
    assert longest_first(rows)["utt_id"].tolist() == ["c", "b", "a", "d"]        # c: 3 s x 2 models = 6
    for name, size in (("a", 300), ("b", 100), ("c", 200)):
        (tmp_path / name).write_bytes(b"x" * size)
    unknown = rows.assign(duration_s=[2.0, None, 3.0, 2.0],
                          path=[str(tmp_path / n) for n in ("a", "b", "c", "missing")])
    assert longest_first(unknown)["utt_id"].tolist() == ["c", "a", "b", "d"]     # 400, 300, 100, 0 bytes
    assert longest_first(unknown.drop(columns="duration_s"))["utt_id"].tolist() == ["c", "a", "b", "d"]


@pytest.mark.parametrize("norm", ["group", "layer"])
def test_batched_speech_scores_equal_one_utterance_at_a_time(tmp_path, norm):
    """A GPU scores sub-batches; the scores must not depend on which utterances share one. A layer-norm
    checkpoint pads under an attention mask; a group-norm one (wav2vec2-base) batches equal lengths only."""
    import torch

    from ser.inference.backends.hf_speech import HFSpeechStage, pads_safely

    path = build_wav2vec2(tmp_path / norm, ["ang", "hap", "neu", "sad"], seed=3, norm=norm)
    stage = HFSpeechStage(str(path), ("ang", "hap", "neu", "sad"), device="cpu")
    loaded = stage.load("f1")
    rng = np.random.default_rng(0)
    waves = [0.1 * rng.standard_normal(n).astype(np.float32) for n in (8000, 12000, 12000, 16000, 20000, 9000)]
    stage.sub_batch = 1
    one = stage.score(loaded, waves)
    stage.sub_batch = 4
    np.testing.assert_allclose(stage.score(loaded, waves), one, atol=2e-5)
    extractor, model, _ = loaded
    assert pads_safely(extractor, model) == (norm == "layer")
    if norm == "group":                  # why: padding the short utterances moves a group-norm model's scores
        padded = extractor(waves, sampling_rate=16000, padding=True, return_tensors="pt")
        with torch.inference_mode():
            probs = torch.softmax(model(**padded).logits, dim=-1).numpy()
        assert np.abs(probs[:, loaded[2]] - one).max() > 10 * 2e-5         # well beyond the tolerance above


def test_sub_batches_keep_lengths_apart_unless_padding_is_safe():
    from ser.inference.backends.hf_speech import sub_batches

    lengths = np.array([5, 3, 5, 3, 7, 5])
    assert [list(b) for b in sub_batches(lengths, 2, pad=False)] == [[1, 3], [0, 2], [5], [4]]
    assert [list(b) for b in sub_batches(lengths, 4, pad=True)] == [[1, 3, 0, 2], [5, 4]]


def test_batched_sentiment_scores_equal_one_text_at_a_time(tmp_path):
    """Texts padded together under the tokenizer's attention mask score as they do alone."""
    from ser.inference.backends.sentiment import HFSentimentStage
    from ser.testing.tiny_models import WORDS

    stage = HFSentimentStage(str(build_sentiment(tmp_path / "sentiment")), device="cpu")
    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(WORDS, int(rng.integers(1, 40)))) for _ in range(40)]
    stage.sub_batch = 1
    one = stage.score(texts)
    stage.sub_batch = 32
    np.testing.assert_allclose(stage.score(texts), one, atol=1e-6)
