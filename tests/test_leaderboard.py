"""ser leaderboard: several runs side by side, every figure equal to the run's own results."""

import json

import pandas as pd
import pytest

from ser.cli import main
from ser.reporting.leaderboard import fold_mean_ci
from ser.evaluation.result_types import CrossTransfer, ScoredSystems
from ser.data.schema import validate
from ser.data.synthetic import synthetic_scores

FAST = ("tune: {engine: optuna, trials: 3, space: {select: {tau_h: {quantiles: [0.05, 0.95], steps: 5},"
        " tau_v: {quantiles: [0.05, 0.95], steps: 5}}}}\nevaluate: {bootstrap: 20}\n")


def test_fold_mean_ci_is_the_t_interval():
    # mean 0.65, sd 0.0707107, t(0.975, 1 df) = 12.7062: half-width 12.7062 * 0.0707107 / sqrt(2) = 0.635310
    mean, low, high = fold_mean_ci([0.6, 0.7])
    assert (mean, low, high) == pytest.approx((0.65, 0.65 - 0.635310, 0.65 + 0.635310), abs=1e-6)
    assert fold_mean_ci([0.6]) is None


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A tuned run, an evaluation of the same table, and a two-corpus cross run: the three kinds of run directory."""
    root = tmp_path_factory.mktemp("lb")
    (root / "c.yaml").write_text(FAST)
    one = validate(synthetic_scores(n_folds=4, per_fold=150, seed=4))
    one.to_parquet(root / "one.parquet")
    two = pd.concat([one, validate(synthetic_scores(n_folds=3, per_fold=150, seed=5, corpus="other"))
                     .assign(utt_id=lambda d: "o-" + d["utt_id"])])
    validate(two).to_parquet(root / "two.parquet")
    cfg = ["--config", str(root / "c.yaml")]
    assert main(["tune", "--scores", str(root / "one.parquet"), "--out", str(root / "tuned"), *cfg]) == 0
    assert main(["evaluate", "--scores", str(root / "one.parquet"), "--out", str(root / "evaluated"), *cfg]) == 0
    assert main(["cross", "--scores", str(root / "two.parquet"), "--out", str(root / "cross"), *cfg]) == 0
    return root


def _check_against_results(csv: pd.DataFrame, run: str, corpus: str, result: dict) -> None:
    """Every row of (run, corpus) shows the run's own means, gains and folds better, in points to 2 decimals."""
    rows = csv[(csv["run"] == run) & (csv["corpus"] == corpus)]
    assert len(rows) > 0
    for row in rows.to_dict("records"):
        mean = result["mean"][row["system"]]
        assert [row["UA"], row["WA"], row["macro-F1"]] == pytest.approx(
            [round(100 * mean[m], 2) for m in ("ua", "wa", "macro_f1")])
        assert row["folds"] == len(result["folds"])
        if row["system"] != "speech":
            metric = {"UA": "ua", "macro-F1": "macro_f1"}[row["gain in"]]
            assert metric == ("ua" if run == "evaluated" else "macro_f1")      # evaluate's headline metric is UA
            gain = 100 * (mean[metric] - result["mean"]["speech"][metric])
            assert row["vs speech"] == pytest.approx(round(gain, 2))
            assert row["folds better"] == result["comparisons"][row["system"]]["folds"]["improved"]


def test_leaderboard_puts_runs_side_by_side_in_every_format(runs, tmp_path):
    out = tmp_path / "lb"
    assert main(["leaderboard", "--runs", str(runs / "tuned"), str(runs / "evaluated"), str(runs / "cross"),
                 "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["leaderboard.csv", "leaderboard.html", "leaderboard.md",
                                                     "leaderboard.tex"]
    csv = pd.read_csv(out / "leaderboard.csv")
    assert list(csv.columns[:13]) == ["corpus", "run", "system", "folds", "UA", "UA ci_low", "UA ci_high", "WA",
                                      "WA ci_low", "WA ci_high", "macro-F1", "macro-F1 ci_low", "macro-F1 ci_high"]
    assert (csv["UA ci_low"] <= csv["UA"]).all() and (csv["UA"] <= csv["UA ci_high"]).all()
    tuned = json.loads((runs / "tuned" / "results.json").read_text())
    _check_against_results(csv, "tuned", "tuned", tuned)
    assert set(csv[csv["run"] == "tuned"]["system"]) == {"speech", "text", "tuned", "oracle"}
    evaluated = json.loads((runs / "evaluated" / "evaluation.json").read_text())
    _check_against_results(csv, "evaluated", "evaluated", evaluated)
    cross = json.loads((runs / "cross" / "cross.json").read_text())
    for corpus in ("synthetic", "other"):
        _check_against_results(csv, "cross", corpus, cross["pairs"][f"{corpus}->{corpus}"])
    verdict = csv[(csv["run"] == "tuned") & (csv["system"] == "tuned")]["search vs best baseline"].item()
    assert verdict.startswith(tuned["baselines"]["verdict"] + " " + tuned["baselines"]["best"])
    md, html, tex = ((out / f"leaderboard.{x}").read_text() for x in ("md", "html", "tex"))
    assert "| corpus | run | system | folds | UA [95% CI] |" in md and "<table>" in html
    assert r"\begin{tabular}" in tex and r"\label{tab:ser-leaderboard}" in tex


def test_leaderboard_systems_and_bad_runs_are_named(runs, tmp_path, capsys):
    assert main(["leaderboard", "--runs", str(runs / "tuned"), "--out", str(tmp_path / "a"),
                 "--systems", "tuned", "loglinear[top,ratio]"]) == 0
    assert list(pd.read_csv(tmp_path / "a" / "leaderboard.csv")["system"]) == ["tuned", "loglinear[top,ratio]"]
    assert main(["leaderboard", "--runs", str(runs / "tuned"), "--out", str(tmp_path / "b"),
                 "--systems", "nosuch"]) == 2
    assert "none of the runs has the systems ['nosuch']" in capsys.readouterr().err
    assert main(["leaderboard", "--runs", str(tmp_path / "missing"), "--out", str(tmp_path / "c")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_cross_shows_ua_and_wa_beside_the_objective(runs):
    from ser.tuning.transfer import format_matrix

    cross = json.loads((runs / "cross" / "cross.json").read_text())
    lines = format_matrix(CrossTransfer.from_dict(cross)).splitlines()
    assert lines[0] == "gain over speech in macro_f1 (ua, wa), points; rows: tuned on, columns: tested on"
    assert lines[1].split() == cross["corpora"] == ["other", "synthetic"]
    gains = [[f"{100 * (m['tuned'][k] - m['speech'][k]):+.2f}" for k in ("macro_f1", "ua", "wa")]
             for m in (cross["pairs"][f"other->{d}"]["mean"] for d in cross["corpora"])]
    assert lines[2].split() == ["other", *(t for f1, ua, wa in gains for t in (f1, f"({ua},", f"{wa})"))]


def test_matrix_columns_fit_the_widest_cell():
    """The first cell is the narrowest here; every cell must still be separated from its neighbour."""
    from ser.tuning.transfer import format_matrix

    def mean(gain):
        return {"tuned": dict.fromkeys(("ua", "wa", "macro_f1"), 0.5 + gain), "speech": dict.fromkeys(
            ("ua", "wa", "macro_f1"), 0.5)}
    gains = {"a->a": 0.0, "a->b": -0.1234, "b->a": 0.2345, "b->b": -0.4567}
    cross = CrossTransfer("macro_f1", ["a", "b"], {}, {p: ScoredSystems([], (), mean(g), {}, {}, {})
                                                       for p, g in gains.items()})
    rows = format_matrix(cross).splitlines()[2:]
    assert rows[0].split() == ["a", "+0.00", "(+0.00,", "+0.00)", "-12.34", "(-12.34,", "-12.34)"]
    assert rows[1].split() == ["b", "+23.45", "(+23.45,", "+23.45)", "-45.67", "(-45.67,", "-45.67)"]
