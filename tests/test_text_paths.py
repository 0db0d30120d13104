"""Several text paths: WER/CER, normalizers, multi-path validation, per-path evaluation and tuning (leakage-free),
the cascade by WER, the text-path transfer matrix, and multi-path inference that decodes each file once."""

import json

import numpy as np
import pandas as pd
import pytest
import yaml

import ser
from ser.evaluation.result_types import CrossTransfer
from ser.measures.asr_errors import basic_normalize, normalizer, pooled, utterance_errors
from ser.data.importers import add_text_path
from ser.data.schema import ScoreTableError, validate
from ser.data.synthetic import synthetic_scores
from ser.tuning.baselines import NO_BASELINES, format_verdict
from ser.tuning.transfer import format_matrix

FAST = {"tune": {"engine": "optuna", "trials": 5, "text": "all",
                 "space": {"select": {"tau_h": {"quantiles": [0.05, 0.95], "steps": 8},
                                      "tau_v": {"quantiles": [0.05, 0.95], "steps": 8}},
                           "soft": {"w": {"range": [0, 1], "steps": 11}}}},
        "evaluate": {"bootstrap": 50, "wer_normalizer": "basic"}}


def test_wer_and_cer_by_hand():
    refs = pd.Series(["the cat sat", "a b c d", "hello", ""])
    hyps = pd.Series(["the cat sat down", "a x c", "", "anything"])
    e = utterance_errors(refs, hyps, "none")
    # 1 insertion / 3; 1 substitution + 1 deletion / 4; blank hypothesis: 1 deletion / 1; empty reference: left out
    assert e["wer"].tolist()[:3] == [1 / 3, 2 / 4, 1.0] and np.isnan(e["wer"].iloc[3])
    assert e[["sub", "del", "ins"]].to_numpy()[:3].tolist() == [[0, 0, 1], [1, 1, 0], [0, 1, 0]]
    p = pooled(e)
    assert p["wer"] == 4 / 8 and p["n_words"] == 8 and p["no_reference"] == 1 and p["n_utterances"] == 3
    # characters: "hello" vs "" is 5 deletions of 5
    assert e["cer"].iloc[2] == 1.0 and e["n_chars"].iloc[2] == 5


def test_counts_agree_with_jiwer_on_random_strings():
    import jiwer

    rng = np.random.default_rng(0)
    vocab = np.array(list("abcdefg"))
    refs = [" ".join("".join(rng.choice(vocab, rng.integers(1, 4))) for _ in range(rng.integers(1, 9)))
            for _ in range(200)]
    hyps = [" ".join(w for w in r.split() if rng.random() > 0.2) + (" zz" if rng.random() < 0.3 else "")
            for r in refs]
    e = utterance_errors(pd.Series(refs), pd.Series(hyps), "none")
    assert pooled(e)["wer"] == pytest.approx(jiwer.wer(refs, [h.strip() for h in hyps]))
    assert pooled(e)["cer"] == pytest.approx(jiwer.cer(refs, [" ".join(h.split()) for h in hyps]))
    for i in range(0, 200, 17):
        assert e["wer"].iloc[i] == pytest.approx(jiwer.wer(refs[i], hyps[i].strip()))


def test_normalizers_on_crafted_strings():
    assert basic_normalize("Hello, world... it's Café-time!") == "HELLO WORLD IT'S CAF TIME"
    assert basic_normalize("  a.b  c ") == "AB C"
    assert normalizer("whisper")("Mr. Smith's  2 cats, colour!") == "mister smith is 2 cats colour"
    assert normalizer("none")("  Keep,  THIS ") == "Keep, THIS"
    with pytest.raises(ValueError, match="not one of"):
        normalizer("fancy")


def two_path_table(seed=2):
    df = validate(synthetic_scores(4, 150, seed=seed, profile="iemocap-like"))
    rng = np.random.default_rng(seed)
    q = df[["text_neg", "text_neu", "text_pos"]].to_numpy()
    noisy = 0.5 * q + 0.5 * rng.dirichlet([1, 1, 1], size=len(q))
    words = np.array("the cat sat on a mat today we go home now".split())
    ref = [" ".join(rng.choice(words, 6)) for _ in range(len(df))]
    hyp = [" ".join(w if rng.random() > 0.3 else "x" for w in r.split()) for r in ref]
    return df.assign(reference_transcript=ref, transcript=ref, transcript_source="reference",
                     **{"text_neg:asr": noisy[:, 0], "text_neu:asr": noisy[:, 1], "text_pos:asr": noisy[:, 2],
                        "transcript:asr": hyp, "transcript_source:asr": "asr:tiny"})


def test_every_path_is_validated_like_the_primary():
    df = two_path_table()
    assert validate(df)["transcript:asr"].iloc[0] == df["transcript:asr"].iloc[0]
    with pytest.raises(ScoreTableError, match=r"text path 'asr': missing column\(s\) \['text_pos:asr'\]"):
        validate(df.drop(columns=["text_pos:asr"]))
    bad = df.copy()
    bad.loc[3, "text_neg:asr"] = np.nan
    with pytest.raises(ScoreTableError, match=r"column 'text_neg:asr' has NaN in 1 row\(s\): row 3"):
        validate(bad)
    bad = df.assign(**{"text_neg:asr": df["text_neg:asr"] * 0.5})
    with pytest.raises(ScoreTableError, match="text path 'asr' probabilities .* do not sum to 1"):
        validate(bad)


def test_import_adds_a_path_to_an_existing_table():
    df = two_path_table()
    base = validate(df.drop(columns=[c for c in df.columns if c.endswith(":asr")]))
    other = base.assign(text_neg=df["text_neg:asr"], text_neu=df["text_neu:asr"], text_pos=df["text_pos:asr"],
                        transcript=df["transcript:asr"], transcript_source="asr:tiny")
    merged = add_text_path(base, other, "asr")
    assert np.allclose(merged["text_neg:asr"], df["text_neg:asr"]) and (merged["transcript:asr"] == df["transcript:asr"]).all()
    with pytest.raises(ValueError, match="already has a text path 'asr'"):
        add_text_path(merged, other, "asr")
    with pytest.raises(ValueError, match="2 utterance\\(s\\) of the score table are not in the source"):
        add_text_path(base, other.iloc[2:], "asr2")


def test_a_spelling_map_for_the_whisper_normalizer(tmp_path):
    """Whisper's British→American map ships with tokenizer files; evaluate.wer_spelling points to a copy."""
    assert normalizer("whisper", {"colour": "color"})("The colour, Mr. Smith!") == "the color mister smith"
    (tmp_path / "english.json").write_text(json.dumps({"colour": "color", "favourite": "favorite"}))
    df = two_path_table()
    df["reference_transcript"] = "my favourite colour"
    df["transcript:asr"] = "my favorite color"
    plain = ser.evaluate(df, {**FAST, "evaluate": {"wer_normalizer": "whisper"}}).to_dict()["asr"]
    assert plain["per_path"]["asr"]["wer"] == pytest.approx(2 / 3) and plain["normalizer"] == "whisper"
    spelled = ser.evaluate(df, {**FAST, "evaluate": {"wer_normalizer": "whisper",
                                                     "wer_spelling": str(tmp_path / "english.json")}}).to_dict()["asr"]
    assert spelled["per_path"]["asr"]["wer"] == 0.0 and spelled["normalizer"] == "whisper + english.json"
    (tmp_path / "list.json").write_text("[1, 2]")
    for name, message in [("missing.json", "no such file"), ("list.json", "expected a JSON object")]:
        bad = {**FAST, "evaluate": {"wer_normalizer": "whisper", "wer_spelling": str(tmp_path / name)}}
        with pytest.raises(ValueError, match=f"evaluate.wer_spelling: .*{name}: {message}"):
            ser.evaluate(df, bad)
        with pytest.raises(ValueError, match=f"evaluate.wer_spelling: .*{name}: {message}"):
            ser.load_config(bad)                   # refused with the config, before any stage of `ser run` starts
    with pytest.raises(ValueError, match="used by the whisper normalizer only; evaluate.wer_normalizer is 'basic'"):
        ser.evaluate(df, {**FAST, "evaluate": {"wer_normalizer": "basic", "wer_spelling": "english.json"}})


def test_evaluate_reports_every_path_and_asr_errors():
    d = ser.evaluate(two_path_table(), FAST).to_dict()
    assert {"text:asr", "oracle:asr", "text", "oracle"} <= set(d["mean"])
    assert set(d["text_paths"]) == {"reference", "asr"} and d["text_paths"]["asr"]["transcript_source"] == ["asr:tiny"]
    asr = d["asr"]
    assert asr["normalizer"] == "basic" and asr["wer"] == 0.0                  # the primary path is the reference
    assert 0.2 < asr["per_path"]["asr"]["wer"] < 0.4
    assert set(asr["per_fold"]) == {f["fold"] for f in d["folds"]}
    assert set(asr["per_path"]["asr"]["per_class"]) == {"ang", "hap", "neu", "sad"}
    text_ua = np.mean([f["systems"]["text:asr"]["ua"] for f in d["folds"]])
    assert d["mean"]["text:asr"]["ua"] == pytest.approx(text_ua)


def test_tune_every_path_cascade_and_transfer():
    table = two_path_table()
    t = ser.tune(table, FAST)
    r = t.to_dict()
    assert {"tuned", "tuned:asr", "text:asr"} <= set(r["mean"]) and set(r["path_configs"]) == {"asr"}
    assert "pred_tuned:asr" in t.predictions
    primary, asr = t.trials["text_path"].isna(), t.trials["text_path"] == "asr"
    assert primary.sum() == asr.sum() == 4 * 5 and (primary | asr).all()              # 4 folds × 5 trials each
    assert set(t.trials.loc[t.trials["text_path"] == "asr", "fold"]) == set(t.trials.loc[t.trials["text_path"].isna(), "fold"])
    matrix = r["text_transfer"]["matrix"]
    assert set(matrix) == {"reference", "asr"}
    # the diagonal is each path's own tuned system, mean over folds
    assert matrix["asr"]["asr"]["tuned"] == pytest.approx(r["mean"]["tuned:asr"]["macro_f1"])
    assert matrix["reference"]["reference"]["tuned"] == pytest.approx(r["mean"]["tuned"]["macro_f1"])
    buckets = r["cascade"]["paths"]["asr"]
    assert [b["bucket"] for b in buckets] == ["0", "(0, 0.2]", "(0.2, 0.5]", "> 0.5"]
    assert sum(b["n"] for b in buckets) == len(table) and r["cascade"]["paths"]["reference"][0]["n"] == len(table)


def test_the_cascade_keeps_utterances_of_two_corpora_with_the_same_ids_apart():
    a = two_path_table()
    b = two_path_table(seed=3).assign(corpus="other", fold=lambda d: "b-" + d["fold"],
                                      model_fold=lambda d: "b-" + d["model_fold"])
    assert set(a["utt_id"]) == set(b["utt_id"])                      # every id occurs in both corpora
    both = pd.concat([a, b], ignore_index=True)
    t = ser.tune(both, FAST)
    buckets = t.to_dict()["cascade"]["paths"]["asr"]
    assert sum(bk["n"] for bk in buckets) == len(both[both["split"] == "test"])
    # the bucket of exact transcripts, by hand: join predictions to each corpus' own transcripts
    pred = t.predictions.merge(both[["corpus", "utt_id", "fold", "transcript:asr", "reference_transcript"]],
                               on=["corpus", "utt_id", "fold"])
    exact = pred[pred["transcript:asr"] == pred["reference_transcript"]]
    assert buckets[0]["n"] == len(exact)
    assert buckets[0]["speech_accuracy"] == pytest.approx((exact["pred_speech"] == exact["label"]).mean())
    assert buckets[0]["fused_accuracy"] == pytest.approx((exact["pred_tuned:asr"] == exact["label"]).mean())


def test_cross_transfers_every_tuned_path_between_corpora(caplog):
    a = two_path_table()
    b = two_path_table(seed=3).assign(corpus="other", utt_id=lambda d: "o-" + d["utt_id"])
    result = ser.cross({"a": a, "b": b}, FAST).to_dict()
    part = result["text_paths"]["asr"]
    assert set(part["matrix"]) == {"a", "b"} and set(part["matrix"]["a"]) == {"a", "b"}
    # the diagonal is the path's own per-fold tuning, as `ser tune --text asr` does it
    own = ser.tune(b, FAST).to_dict()["mean"]["tuned:asr"]["macro_f1"]
    assert part["matrix"]["b"]["b"]["tuned"] == pytest.approx(own)
    assert part["matrix"]["a"]["b"]["tuned"] != result["matrix"]["a"]["b"]["tuned"]       # another text, another result
    printed = format_matrix(CrossTransfer.from_dict(result)).splitlines()
    assert printed[4].split() == ["text", "path", "asr:", "a", "b"]
    row = printed[5].split()          # each cell: the objective's gain, then (UA, WA)
    assert [row[0], *row[1::3]] == ["a", *(f"{100 * part['matrix']['a'][d]['gain']:+.2f}" for d in ("a", "b"))]
    lacking = b.drop(columns=[c for c in b.columns if c.endswith(":asr")])
    with caplog.at_level("WARNING", logger="ser.api"):
        assert "text_paths" not in ser.cross({"a": a, "b": lacking}, FAST).to_dict()
    assert "text path(s) missing from some corpora {'b': ['asr']}" in caplog.text
    named = {**FAST, "tune": {**FAST["tune"], "text": "asr"}}
    with pytest.raises(ValueError, match="cross: corpus 'b': tune.text: the score table has no text path 'asr'"):
        ser.cross({"a": a, "b": lacking}, named)


def test_cross_searches_once_per_path_and_reuses_saved_searches(tmp_path, monkeypatch):
    """`ser run`'s cross stage takes the tune stage's searches for the primary corpus (every text path) and hands
    the rest (each corpus pooled, the other corpus' folds) to the engine in one call per path, so an engine runs
    them side by side; a rerun (`ser cross --resume`) searches nothing again; the matrices are the same either way."""
    from ser.tuning import per_fold as tuning
    from ser.api import resolve
    from ser.study import tune_stage

    a = two_path_table()
    b = two_path_table(seed=3).assign(corpus="other", utt_id=lambda d: "o-" + d["utt_id"])
    tuned = tune_stage(*resolve(a, FAST), tmp_path).to_dict()
    searched = []
    real = tuning.make_fold_search

    def counting(tune, engine=None):
        search = real(tune, engine)

        def run(tuning_sets, seeds, advance=tuning.no_progress, finished=tuning.nothing_kept):
            searched.append(sorted(tuning_sets))
            return search(tuning_sets, seeds, advance, finished)
        return run

    monkeypatch.setattr(tuning, "make_fold_search", counting)
    dirs = {"a": tmp_path / "folds", "b": tmp_path / "b-folds"}
    first = ser.cross({"a": a, "b": b}, FAST, state_dirs=dirs).to_dict()
    folds_a, folds_b = sorted(a["fold"].unique()), sorted(b["fold"].unique())
    # per path, one call: each corpus' pooled test rows (the transfer source) and b's folds; a's folds came from the
    # tune stage
    pooled = ["a (pooled)", "b (pooled)"]
    assert searched == [sorted(pooled + [f"b fold {f}" for f in folds_b])] * 2
    assert first["matrix"]["a"]["a"]["tuned"] == pytest.approx(tuned["mean"]["tuned"]["macro_f1"])
    assert first["text_paths"]["asr"]["matrix"]["a"]["a"]["tuned"] == pytest.approx(
        tuned["mean"]["tuned:asr"]["macro_f1"])
    assert sorted(p.name for p in (tmp_path / "b-folds" / "text-asr").iterdir()) == \
        sorted(["pooled.json", *(f"fold-{f}.json" for f in folds_b)])
    searched.clear()
    again = ser.cross({"a": a, "b": b}, FAST, state_dirs=dirs).to_dict()
    assert searched == [] and again["matrix"] == first["matrix"]
    assert again["text_paths"]["asr"]["matrix"] == first["text_paths"]["asr"]["matrix"]
    searched.clear()
    ser.cross({"a": a, "b": b}, FAST, state_dirs=dirs, reuse=False)
    assert searched == [sorted(pooled + [f"a fold {f}" for f in folds_a] + [f"b fold {f}" for f in folds_b])] * 2


def _choices(df, path):
    r = ser.tune(df, FAST).to_dict()
    if path is None:
        return {f["fold"]: f["best"]["config"] for f in r["folds"]}
    return r["path_configs"][path]


def test_text_all_is_leakage_free_and_paths_are_independent():
    df = two_path_table()
    before_asr, before_primary = _choices(df, "asr"), _choices(df, None)
    k = sorted(df["fold"].unique())[1]
    changed = df.copy()
    rows = changed["fold"] == k
    changed.loc[rows, "label"] = np.random.default_rng(1).permutation(changed.loc[rows, "label"].to_numpy())
    assert _choices(changed, "asr")[k] == before_asr[k]              # fold k's own test labels never move its choice
    other = df.assign(**{"text_neg:asr": df["text_pos:asr"], "text_pos:asr": df["text_neg:asr"]})
    assert _choices(other, None) == before_primary                   # another path's text never moves the primary's


def test_cli_prints_the_text_path_table(tmp_path, capsys):
    from ser.cli import main

    two_path_table().to_parquet(tmp_path / "s.parquet")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(FAST))
    assert main(["tune", "--scores", str(tmp_path / "s.parquet"), "--config", str(tmp_path / "c.yaml"),
                 "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    table = out[out.index("text paths (macro_f1"):].splitlines()
    r = json.loads((tmp_path / "o" / "results.json").read_text())
    assert table[2].split() == ["reference", "0.00", f"{100 * r['text_paths']['reference']['sentiment_accuracy']:.2f}",
                                f"{100 * r['mean']['text']['macro_f1']:.2f}", f"{100 * r['mean']['tuned']['macro_f1']:.2f}"]
    assert table[3].split()[0] == "asr" and table[3].split()[1] == f"{100 * r['asr']['per_path']['asr']['wer']:.2f}"


def test_unknown_path_is_named():
    with pytest.raises(ValueError, match=r"no text path 'whisper' \(paths: \['asr'\]\)"):
        ser.tune(two_path_table(), {**FAST, "tune": {**FAST["tune"], "text": "whisper"}})


def test_two_paths_decode_each_file_once_and_run_each_asr_once(tmp_path, monkeypatch):
    """The inference stages, run in-process: two paths sharing one ASR model, a third on the reference."""
    import ser.inference.backends.audio_stage as audio_stage
    import ser.inference.backends.whisper as whisper
    from jobs.infer import _path_transcripts, path_sources, text_stages
    from ser.inference.backends.acoustic import AcousticSpeechStage, acoustic_features, train_fold_models
    from ser.config import PrepareConfig, load_config
    from ser.inference.prepare import prepare
    from ser.data.folds import scoring_rows
    from ser.inference.pipeline import group_scorings

    manifest = prepare(PrepareConfig(corpus="demo", root=str(tmp_path / "demo"), per_speaker=2))
    feats = np.stack([acoustic_features(audio_stage.load_audio(p)) for p in manifest["path"]])
    train_fold_models(manifest, str(tmp_path / "m-{fold}.pkl"), ("ang", "hap", "neu", "sad"), feats)
    asr = {"backend": "whisper", "model": "ser:tiny-random"}
    infer = load_config({"infer": {"asr": asr, "text_paths": [
        {"name": "same-asr", "asr": asr, "sentiment": {"backend": "vader", "lowercase": True}},
        {"name": "ref", "asr": "reference", "sentiment": {"backend": "vader"}}]}}).infer
    decoded, transcribed = [], []
    real_load, real_call = audio_stage.load_audio, whisper.WhisperStage.__call__
    monkeypatch.setattr(audio_stage, "load_audio", lambda path, sr=16000: decoded.append(path) or real_load(path, sr))
    monkeypatch.setattr(whisper.WhisperStage, "__call__",
                        lambda self, batch: transcribed.append(len(batch["path"])) or real_call(self, batch))
    rows = group_scorings(scoring_rows(manifest, in_sample=True, val_share=0.3))
    batch = audio_stage.load_batch({c: rows[c].to_numpy() for c in rows.columns}
                                   | {"reference_transcript": rows["transcript"].to_numpy()})
    batch = AcousticSpeechStage(str(tmp_path / "m-{fold}.pkl"), ("ang", "hap", "neu", "sad"))(batch)
    stages = text_stages(infer, tmp_path)
    assert [s["fn"].__name__ for s in stages] == ["WhisperStage", "VaderStage", "VaderStage", "VaderStage"]
    for stage in stages:
        batch = stage["fn"](**stage["fn_constructor_kwargs"])(batch)
    assert sorted(decoded) == sorted(manifest["path"])                # each file decoded once
    assert sum(transcribed) == len(batch["path"])                     # the shared ASR ran once per row batch
    out = _path_transcripts(pd.DataFrame({k: v for k, v in batch.items() if k != "audio"}), path_sources(infer))
    test = out["split"] == "test"
    assert (out.loc[test, "transcript:same-asr"] == out.loc[test, "transcript"]).all()
    assert (out["transcript:ref"] == out["reference_transcript"]).all() and (out["transcript_source:ref"] == "reference").all()
    assert {"text_neg:same-asr", "text_pos:ref"} <= set(out.columns)
    assert out.loc[test, "text_neg:ref"].notna().all()


def test_a_path_whose_text_is_the_same_on_every_row_is_not_searched(caplog):
    """Every transcript of path `asr` blank, so its sentiment is one constant row: that path keeps speech alone in
    every fold with a single speech trial (no search), says so once, and the primary path is searched as usual.
    A table whose every path is constant gets no fusion baselines either, and says why instead of a verdict."""
    df = two_path_table().assign(**{"transcript:asr": "", "text_neg:asr": 0.0, "text_neu:asr": 1.0,
                                    "text_pos:asr": 0.0})
    with caplog.at_level("WARNING", logger="ser.api"):
        tuned = ser.tune(df, FAST)
    r, trials = tuned.result, tuned.trials
    assert all(config == {"kind": "speech"} for config in r.path_configs["asr"].values())
    assert r.mean["tuned:asr"] == r.mean["speech"]
    path_trials = trials[trials["text_path"] == "asr"]
    assert len(path_trials) == 4 and set(path_trials["variant"]) == {"speech"}
    assert len(trials[trials["text_path"].isna()]) == 4 * FAST["tune"]["trials"]
    assert caplog.text.count("the sentiment is the same on every row") == 1
    assert "text path 'asr' of synthetic: the sentiment is the same on every row (blank transcripts?)" in caplog.text
    caplog.clear()
    other = df.assign(corpus="other", utt_id=lambda d: "o-" + d["utt_id"])
    with caplog.at_level("WARNING", logger="ser.api"):                    # `ser run`'s cross: a tuned corpus comes in
        ser.cross({"synthetic": df, "other": other}, FAST, in_corpus={"synthetic": r})
    assert "text path 'asr' of other:" in caplog.text and "of synthetic:" not in caplog.text
    assert r.baselines is not None                                      # the primary path says something
    constant = df.assign(text_neg=0.2, text_neu=0.5, text_pos=0.3)             # the primary path too
    blank = ser.tune(constant, FAST)
    assert blank.result.kept() == dict.fromkeys(sorted(df["fold"].unique()), {"kind": "speech"})
    assert blank.result.baselines is None and list(blank.baselines()["system"]) == ["tuned"]   # no fusion baselines
    assert NO_BASELINES in blank.summary() and format_verdict(blank.result).endswith(NO_BASELINES)
