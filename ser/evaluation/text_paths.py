"""Several text paths side by side: sentiment accuracy, ASR error rates, the cascade from WER to fusion gain,
and a configuration tuned on one path applied to another (the text-path transfer matrix).

A score table's primary path is its unsuffixed ``text_*``/``transcript`` columns; further paths are suffixed
(``text_neg:NAME``). Every function here reads one utterance per row: each fold's own test rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ser.measures.asr_errors import WerNormalizer, pooled, pooled_by, utterance_errors
from ser.data.folds import own_test_rows
from ser.data.labels import SENTIMENTS, LabelSet
from ser.measures.metrics import fold_scores
from ser.data.schema import path_view, text_path_names
from ser.evaluation.result_types import ScoredSystems
from ser.evaluation.scoring import per_fold_rules, predict_systems

WER_BUCKETS = ((0.0, 0.0, "0"), (0.0, 0.2, "(0, 0.2]"), (0.2, 0.5, "(0.2, 0.5]"), (0.5, np.inf, "> 0.5"))
"""Utterance WER buckets: (exclusive low, inclusive high, label); the first is exactly 0."""


def primary_name(df: pd.DataFrame) -> str:
    """The primary path named by its ``transcript_source`` ('reference', 'asr:large-v3'), else 'primary'."""
    sources = [s for s in df["transcript_source"].astype(str).unique() if s]
    return sources[0] if len(sources) == 1 else "primary"


def paths_of(df: pd.DataFrame) -> dict[str, str | None]:
    """Display name → column suffix (None for the primary path), primary first."""
    return {primary_name(df): None, **{name: name for name in text_path_names(df.columns)}}


def gold_sentiment(df: pd.DataFrame, labels: LabelSet) -> np.ndarray:
    """Gold emotion mapped to sentiment indices (negative classes → neg, neutral → neu, positive → pos); -1 for a
    class with no sentiment role."""
    return df["label"].map(dict(zip(labels.classes, labels.polarity))).fillna(-1).to_numpy(dtype=np.int64)


def path_summary(df: pd.DataFrame, labels: LabelSet) -> dict[str, dict]:
    """Per path: its column suffix, transcript source, and sentiment accuracy against the gold emotion."""
    rows = df.loc[own_test_rows(df)]
    gold = gold_sentiment(rows, labels)
    has_role = gold >= 0
    out = {}
    for name, suffix in paths_of(df).items():
        view = path_view(rows, suffix)
        predicted = np.argmax(view[[f"text_{s}" for s in SENTIMENTS]].to_numpy(), axis=1)
        sources = sorted(s for s in view["transcript_source"].astype(str).unique() if s)
        out[name] = {"columns": "text_*" if suffix is None else f"text_*:{suffix}", "transcript_source": sources,
                     "sentiment_accuracy": float((predicted == gold)[has_role].mean()) if has_role.any() else None,
                     "n": int(has_role.sum())}
    return out


def has_references(df: pd.DataFrame) -> bool:
    return "reference_transcript" in df and bool((df["reference_transcript"].astype(str).str.strip() != "").any())


def path_errors(df: pd.DataFrame, normalizer: WerNormalizer) -> dict[str, pd.DataFrame]:
    """Utterance error counts of every path's transcripts (own test rows, table order), by path display name;
    computed once and shared by the ASR report and the cascade."""
    rows = df.loc[own_test_rows(df)]
    return {name: utterance_errors(rows["reference_transcript"], path_view(rows, suffix)["transcript"], normalizer)
            for name, suffix in paths_of(df).items()}


def asr_report(df: pd.DataFrame, errors_by_path: dict[str, pd.DataFrame], normalizer: str) -> dict:
    """``evaluation.json["asr"]``: the primary path's pooled WER/CER and per fold, and every path's pooled
    figures per fold, speaker and gold class (``errors_by_path`` from ``path_errors``; ``normalizer``: its label)."""
    rows = df.loc[own_test_rows(df)]
    per_path = {}
    for name, errors in errors_by_path.items():
        per_path[name] = {**pooled(errors), "per_fold": pooled_by(errors, rows["fold"]),
                          "per_class": pooled_by(errors, rows["label"])}
        if "speaker" in rows:
            per_path[name]["per_speaker"] = pooled_by(errors, rows["speaker"])
    primary = per_path[primary_name(df)]
    return {"normalizer": normalizer, "wer": primary["wer"], "cer": primary["cer"],
            "n_words": primary["n_words"], "no_reference": primary["no_reference"],
            "per_fold": {f: {"wer": v["wer"], "n_words": v["n_words"]} for f, v in primary["per_fold"].items()},
            "per_path": per_path}


def cascade(df: pd.DataFrame, predictions: pd.DataFrame, systems: dict[str, str],
            errors_by_path: dict[str, pd.DataFrame], n_boot: int = 1000, seed: int = 0) -> dict[str, list[dict]]:
    """Fusion gain over speech by utterance WER bucket, per path ({path display name: fused system}).

    ``predictions`` is predictions.parquet (own test rows, with ``pred_speech`` and ``pred_<system>``). Per
    bucket: utterances, speech and fused accuracy, the gain with a bootstrap 95% CI over utterances, how often
    fusion switched away from the speech label and how often such a switch was right.
    """
    rng = np.random.default_rng(seed)
    key = ["corpus", "utt_id", "fold"]                   # unique among own test rows (fold = model_fold)
    rows = predictions.set_index(key).loc[pd.MultiIndex.from_frame(df.loc[own_test_rows(df), key])]
    gold, speech = rows["label"].to_numpy(), rows["pred_speech"].to_numpy()
    out = {}
    for name, system in systems.items():
        errors = errors_by_path[name]
        fused = rows[f"pred_{system}"].to_numpy()
        wer = errors["wer"].to_numpy()
        buckets = []
        for low, high, label in WER_BUCKETS:
            mask = errors["scored"].to_numpy() & ((wer == 0) if high == 0 else (wer > low) & (wer <= high))
            buckets.append({"bucket": label, **_bucket_gain(gold[mask], speech[mask], fused[mask], rng, n_boot)})
        out[name] = buckets
    return out


def _bucket_gain(gold: np.ndarray, speech: np.ndarray, fused: np.ndarray, rng: np.random.Generator,
                 n_boot: int) -> dict:
    n = len(gold)
    if n == 0:
        return {"n": 0, "speech_accuracy": None, "fused_accuracy": None, "gain": None, "ci_low": None,
                "ci_high": None, "switches": 0, "switch_right": None}
    right_speech, right_fused = (speech == gold).astype(float), (fused == gold).astype(float)
    diff = right_fused - right_speech
    draws = diff[rng.integers(0, n, size=(n_boot, n))].mean(axis=1)
    switched = fused != speech
    return {"n": int(n), "speech_accuracy": float(right_speech.mean()), "fused_accuracy": float(right_fused.mean()),
            "gain": float(diff.mean()), "ci_low": float(np.quantile(draws, 0.025)),
            "ci_high": float(np.quantile(draws, 0.975)), "switches": int(switched.sum()),
            "switch_right": float(right_fused[switched].mean()) if switched.any() else None}


def transfer_matrix(df: pd.DataFrame, labels: LabelSet, configs: dict[str, dict[str, dict]], objective: str
                    ) -> dict:
    """Per-fold configurations tuned on one path ({path display name: {fold: config}}) applied to every path's
    text: mean over folds of ``objective`` and its gain over speech (rows: tuned on; columns: applied to)."""
    suffix = paths_of(df)
    names = [n for n in suffix if n in configs]
    folds = sorted(configs[names[0]])
    rules, paths = {"speech": per_fold_rules(folds, labels, {})["speech"]}, {}
    for src in names:
        tuned = per_fold_rules(folds, labels, {"tuned": configs[src]})["tuned"]
        for dst in names:
            rules[f"{src}->{dst}"] = tuned
            if suffix[dst] is not None:
                paths[f"{src}->{dst}"] = suffix[dst]
    test, preds = predict_systems(df, labels, rules, folds, paths)
    k = labels.k

    def mean_score(pred: np.ndarray) -> float:
        return float(np.mean(fold_scores(test.arrays.y, pred, test.fold_index, len(test.folds), k)[objective]))

    speech = mean_score(preds["speech"])
    tuned = {pair: mean_score(pred) for pair, pred in preds.items() if pair != "speech"}
    matrix = {src: {dst: {"tuned": tuned[f"{src}->{dst}"], "gain": tuned[f"{src}->{dst}"] - speech} for dst in names}
              for src in names}
    return {"objective": objective, "paths": names, "speech": speech, "matrix": matrix}


def format_text_paths(result: ScoredSystems) -> str:
    """The terminal table of text paths: WER, sentiment accuracy, text-only and tuned scores (mean over folds, %);
    '' when the table has one path and no reference transcripts."""
    paths, asr = result.text_paths or {}, result.asr or {}
    if len(paths) < 2 and not asr:
        return ""
    metric = result.headline_metric
    width = max(len(name) for name in paths) + 2
    lines = [f"text paths ({metric}, mean over folds, %):",
             f"{'path':<{width}}{'WER':>8}{'sent. acc':>11}{'text':>8}{'tuned':>8}"]
    for name, info in paths.items():
        suffix = "" if info["columns"] == "text_*" else ":" + info["columns"].split(":", 1)[1]
        wer = asr.get("per_path", {}).get(name, {}).get("wer")
        cells = [wer, info["sentiment_accuracy"], (result.mean.get(f"text{suffix}") or {}).get(metric),
                 (result.mean.get(f"tuned{suffix}") or {}).get(metric)]
        lines.append(f"{name:<{width}}" + "".join(f"{'-' if v is None else f'{100 * v:.2f}':>{w}}"
                                                  for v, w in zip(cells, (8, 11, 8, 8))))
    return "\n".join(lines)
