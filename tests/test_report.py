"""`ser report`: tables against the numbers they come from, formats, evaluate-only and 3-class runs."""

import json
from dataclasses import replace
import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

from ser.cli import main
from ser.evaluation.scoring import format_p
from ser.data.labels import LabelSet
from ser.reporting.plots import RunOutputs
from ser.evaluation.result_types import Comparison, FoldTest, PairedDifference, TunedSystems
from ser.reporting.results import run_outputs
from ser.reporting.escape import tex_text
from ser.reporting.report import headline
from ser.data.schema import validate
from ser.data.synthetic import synthetic_scores
from ser.tuning.baselines import describe_hindsight

TUNE = "tune: {engine: optuna, trials: 6}\nevaluate: {bootstrap: 100}\n"


@pytest.fixture(scope="module")
def tuned_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("tuned")
    df = synthetic_scores(n_folds=4, per_fold=150, seed=5, profile="iemocap-like")
    df["condition"] = np.where(np.arange(len(df)) % 3 == 0, "scripted", "improvised")
    validate(df).to_parquet(d / "s.parquet")
    (d / "c.yaml").write_text(TUNE)
    assert main(["tune", "--scores", str(d / "s.parquet"), "--config", str(d / "c.yaml"), "--out", str(d / "run")]) == 0
    assert main(["report", "--run", str(d / "run"), "--format", "svg", "pdf"]) == 0
    return d / "run"


def table(run, name):
    return pd.read_csv(run / "tables" / f"{name}.csv", dtype={"fold": str, "system": str, "class": str})


def test_tables_carry_the_numbers_of_results_json(tuned_run):
    r = json.loads((tuned_run / "results.json").read_text())
    per_fold = table(tuned_run, "per_fold")
    assert list(per_fold.columns) == ["fold", "n", "speech macro-F1", "text macro-F1", "tuned macro-F1",
                                      "gain (tuned − speech)", "gain ci_low", "gain ci_high", "chosen configuration"]
    for row, f in zip(per_fold.itertuples(index=False), r["folds"]):
        s = f["systems"]
        assert row[0] == f["fold"] and row[1] == f["n"]
        assert row[2] == pytest.approx(100 * s["speech"]["macro_f1"], abs=0.006)
        assert row[4] == pytest.approx(100 * s["tuned"]["macro_f1"], abs=0.006)
        assert row[5] == pytest.approx(100 * (s["tuned"]["macro_f1"] - s["speech"]["macro_f1"]), abs=0.006)
        assert row[6] <= row[5] <= row[7]                                       # the gain's paired bootstrap CI
        assert row[8] == f["best"]["description"]
    per_class = table(tuned_run, "per_class").set_index("class")
    for c in r["labels"]:
        assert float(per_class.loc[c, "tuned F1"]) == pytest.approx(100 * r["pooled"]["tuned"]["per_class"][c]["f1"],
                                                                    abs=0.006)
        assert int(per_class.loc[c, "support"]) == r["pooled"]["speech"]["per_class"][c]["support"]
    base = table(tuned_run, "baselines").set_index("system")
    for name in ["tuned"] + r["baselines"]["systems"]:
        assert base.loc[name, "macro-F1 mean"] == pytest.approx(100 * r["mean"][name]["macro_f1"], abs=0.006)
        assert base.loc[name, "macro-F1 std"] == pytest.approx(100 * r["std"][name]["macro_f1"], abs=0.006)
    metrics = table(tuned_run, "metrics")
    assert all(pd.api.types.is_numeric_dtype(metrics[c]) for c in metrics.columns if c != "system")
    optimism = table(tuned_run, "optimism")
    assert [float(x) for x in optimism["optimism"]] == pytest.approx(
        [100 * f["best"]["optimism"] for f in r["folds"]], abs=0.006)
    choices = table(tuned_run, "choices")
    assert list(choices["why"]) == [f["best"]["why"] for f in r["folds"]]
    assert all(why.startswith(("fusion kept: ", "speech alone kept: ")) for why in choices["why"])
    by_condition = table(tuned_run, "by_condition")
    assert list(by_condition["condition"]) == ["improvised", "scripted"]
    assert sum(int(n) for n in by_condition["n"]) == sum(f["n"] for f in r["folds"])


def test_every_figure_and_table_in_every_format(tuned_run):
    pngs = {p.stem for p in (tuned_run / "figures").glob("*.png")}
    assert pngs >= {"folds", "gains", "confusions", "transitions", "uncertainty", "trials"}
    for fmt in ("svg", "pdf"):
        assert {p.stem for p in (tuned_run / "figures").glob(f"*.{fmt}")} == pngs
    assert (tuned_run / "figures" / "folds.svg").read_text().lstrip().startswith("<?xml")
    assert (tuned_run / "figures" / "folds.pdf").read_bytes()[:4] == b"%PDF"
    names = {p.stem for p in (tuned_run / "tables").glob("*.csv")}
    assert names == {p.stem for p in (tuned_run / "tables").glob("*.tex")}
    assert names >= {"per_fold", "metrics", "per_class", "baselines", "optimism", "choices", "by_condition"}
    tex = (tuned_run / "tables" / "metrics.tex").read_text()
    assert tex.startswith("\\begin{table}[htbp]\n\\centering\n\\small\n\\caption{All metrics. Mean $\\pm$ standard")
    assert "\\label{tab:ser-metrics}\n\\begin{tabular}{lrrrrrr}\n\\toprule" in tex
    assert "\\bottomrule" in tex and tex.endswith("\\end{table}\n")


def test_p_values_are_never_printed_as_zero(tuned_run):
    assert format_p(0.0) == "p < 0.001" and format_p(0.0004) == "p < 0.001" and format_p(0.034) == "p = 0.034"
    out = run_outputs(tuned_run)
    result = replace(out.result, comparisons={**out.result.comparisons, "tuned": Comparison(
        "speech", PairedDifference("macro_f1", 0.02, 0.01, 0.03, 0.0, 100, 0.05), FoldTest(4, 4, 0, 0.02, 0.0625, None))})
    text = headline(RunOutputs(out.name, result, True, None, None, None, None))
    assert "paired bootstrap p < 0.001" in text and "p = 0.000" not in text and "Wilcoxon p = 0.062" in text


def test_the_search_is_judged_against_the_best_baseline_with_its_ci(tuned_run, tmp_path):
    r = json.loads((tuned_run / "results.json").read_text())
    base, v = r["baselines"], r["baselines"]["versus_best"]
    assert base["best"] == max(base["systems"], key=lambda n: r["mean"][n]["macro_f1"])
    assert v["diff"] == pytest.approx(r["mean"]["tuned"]["macro_f1"] - r["mean"][base["best"]]["macro_f1"])
    assert v["ci_low"] <= v["diff"] <= v["ci_high"] and v["selection_bias"] >= 0
    assert base["verdict"] == ("beats" if v["ci_low"] > 0 else "falls short of" if v["ci_high"] < 0 else "is level with")
    md = (tuned_run / "report.md").read_text()
    assert (f"The search {base['verdict']} the best simple baseline, {base['best']}: {100 * v['diff']:+.2f} points "
            f"[{100 * v['ci_low']:+.2f}, {100 * v['ci_high']:+.2f}] 95% CI over test utterances. That baseline is the "
            f"best of {len(base['systems'])} on these test rows, which flatters it by "
            f"~{100 * v['selection_bias']:.2f} points.") in md
    pick = base["per_fold_pick"]
    assert set(pick["picked"]) == {f["fold"] for f in r["folds"]}
    assert pick["score"] == pytest.approx(np.mean([f["systems"][pick["picked"][f["fold"]]]["macro_f1"] for f in r["folds"]]))
    assert f"Choosing per fold among the one-weight baselines by tuning score: {100 * pick['score']:.2f} against " in md
    ceiling = base["hindsight"]
    assert set(ceiling["per_fold"]) == {f["fold"] for f in r["folds"]} and ceiling["system"] in pick["systems"]
    assert ceiling["gain"] == pytest.approx(np.mean(list(ceiling["per_fold"].values())))
    assert describe_hindsight(TunedSystems.from_dict(r)) in md
    old = tmp_path / "old"                        # a results.json written before the comparison had a CI
    old.mkdir()
    for name in ("results.json", "trials.parquet", "predictions.parquet"):
        (old / name).write_bytes((tuned_run / name).read_bytes())
    del r["baselines"]["versus_best"], r["baselines"]["verdict"]
    (old / "results.json").write_text(json.dumps(r))
    assert main(["report", "--run", str(old)]) == 0
    assert f"Tuned − best baseline (`{base['best']}`): {100 * v['diff']:+.2f} points." in (old / "report.md").read_text()


def test_tex_escapes_what_latex_would_choke_on():
    assert tex_text("a_b & 50% ± τ_H ≥ 1 → #") == r"a\_b \& 50\% $\pm$ $\tau_H$ $\geq$ 1 $\rightarrow$ \#"


def test_report_from_an_evaluate_only_directory(tmp_path):
    validate(synthetic_scores(n_folds=4, per_fold=100, seed=2,
                              profile="text-strong")).to_parquet(tmp_path / "s.parquet")
    (tmp_path / "c.yaml").write_text("systems: {ll: {kind: loglinear, w: 0.4}}\nevaluate: {bootstrap: 50}\n")
    assert main(["evaluate", "--scores", str(tmp_path / "s.parquet"), "--config", str(tmp_path / "c.yaml"),
                 "--out", str(tmp_path / "ev")]) == 0
    assert main(["report", "--run", str(tmp_path / "ev")]) == 0
    md = (tmp_path / "ev" / "report.md").read_text()
    assert "The best fixed system, `ll`," in md and "## Search" not in md
    assert list(table(tmp_path / "ev", "per_fold").columns[-3:]) == ["gain (ll − speech)", "gain ci_low", "gain ci_high"]


def test_report_of_a_three_class_run(tmp_path):
    df = synthetic_scores(n_folds=4, per_fold=120, seed=4, profile="iemocap-like")
    df["speech_neu"] += df.pop("speech_sad")
    df["label"] = df["label"].replace({"sad": "neu"})
    validate(df, LabelSet(("ang", "hap", "neu"), negative=("ang",))).to_parquet(tmp_path / "s.parquet")
    (tmp_path / "c.yaml").write_text("labels: {classes: [ang, hap, neu], negative: [ang]}\n" + TUNE)
    assert main(["tune", "--scores", str(tmp_path / "s.parquet"), "--config", str(tmp_path / "c.yaml"),
                 "--out", str(tmp_path / "r")]) == 0
    sweep = "sweep: {tau_h: {range: [0, 1.1], steps: 6}, tau_v: {range: [0, 1], steps: 6}}\n"
    (tmp_path / "c.yaml").write_text((tmp_path / "c.yaml").read_text() + sweep)
    assert main(["sweep", "--scores", str(tmp_path / "s.parquet"), "--config", str(tmp_path / "c.yaml"),
                 "--out", str(tmp_path / "r" / "sweep")]) == 0          # a 3-class sweep once crashed (speech_sad)
    assert main(["report", "--run", str(tmp_path / "r")]) == 0
    assert list(table(tmp_path / "r", "per_class")["class"]) == ["ang", "hap", "neu"]
    scopes = set(pd.read_parquet(tmp_path / "r" / "sweep" / "sweep.parquet")["scope"])
    assert scopes == {"global", "ang", "hap", "neu"} and "Threshold sensitivity" in (tmp_path / "r" / "report.md").read_text()


def test_report_refuses_a_directory_without_results(tmp_path, capsys):
    assert main(["report", "--run", str(tmp_path)]) == 2
    assert "holds neither results.json nor evaluation.json" in capsys.readouterr().err


CHROMIUM = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars"]


@pytest.mark.skipif(not shutil.which("chromium"), reason="needs Debian's chromium (apt-get install chromium)")
@pytest.mark.parametrize("width", [420, 1400])
def test_the_report_fits_a_phone_and_a_wide_screen_in_a_real_browser(tuned_run, tmp_path, width):
    """The report in a frame of the width (a headless window is at least 500 px wide): measured in the browser,
    its page never scrolls sideways (wide tables scroll inside their box); a screenshot is taken."""
    probe = tmp_path / "probe.html"
    probe.write_text(f"<!doctype html><html><head><title>loading</title></head><body style='margin:0'>"
                     f"<iframe id=f src='{(tuned_run / 'report.html').as_uri()}' style='width:{width}px;"
                     f"height:1600px;border:0'></iframe><script>document.getElementById('f').onload = function() {{"
                     f"var d = this.contentDocument.documentElement; document.title = 'W' + d.scrollWidth + 'x' + "
                     f"d.clientWidth; }};</script></body></html>")
    run = CHROMIUM + [f"--user-data-dir={tmp_path / 'profile'}", "--allow-file-access-from-files",
                      "--virtual-time-budget=5000", f"--window-size={width + 100},1600"]
    dom = subprocess.run(run + ["--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=120).stdout
    scroll, client = map(int, re.search(r"<title>W(\d+)x(\d+)</title>", dom).groups())
    assert width - 20 <= client <= width and scroll <= client, f"the page is {scroll} px wide in {client} px"
    shot = tmp_path / f"report-{width}.png"
    subprocess.run(run + [f"--screenshot={shot}", probe.as_uri()], capture_output=True, timeout=120)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_table_of_contents_links_every_section_and_the_provenance_is_shown(tuned_run):
    page = (tuned_run / "report.html").read_text()
    links = re.findall(r"<a href='#([^']+)'>", page)
    ids = re.findall(r"<h2 id='([^']+)'>", page)
    assert links == ids and len(ids) >= 5
    record = json.loads((tuned_run / "run.json").read_text())
    assert "name='viewport'" in page and str(record["git_commit"] or "no git checkout") in page
    assert f"seed {record['seed']}" in page and record["created"] in page and record["ser_code"] in page
