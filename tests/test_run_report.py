"""`ser run` end to end on a small demo corpus: stages, skip on rerun, report contents."""

import json
import re
import shutil
import subprocess
import sys

import pytest
import yaml

import ser
from ser.cli import main
from ser.reporting.figures import save
from ser.reporting.plots import FIGURES

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, ray_session):
    root = tmp_path_factory.mktemp("run")
    cfg = {"name": "mini", "prepare": {"corpus": "demo-a", "per_speaker": 14},
           "tune": {"trials": 8, "text": "all", "space": {"select": {"tau_h": {"quantiles": [0.02, 0.98], "steps": 16},
                                                      "tau_v": {"quantiles": [0.02, 0.98], "steps": 16}}}},
           "sweep": {"tau_h": {"range": [0, 1.4], "steps": 15}, "tau_v": {"range": [0, 1.4], "steps": 15}},
           "cross": {"corpora": {"demo-b": {"corpus": "demo-b", "per_speaker": 12}}},
           "infer": {"text_paths": [{"name": "asr", "asr": {"backend": "whisper", "model": "ser:tiny-random"},
                                     "sentiment": {"backend": "vader"}}]},
           "evaluate": {"bootstrap": 200}}
    (root / "mini.yaml").write_text(yaml.safe_dump(cfg))
    # the console entry point, as a user runs it, with stdout and stderr piped to one file
    with open(root / "terminal.txt", "w") as terminal:
        done = subprocess.run([sys.executable, "-m", "ser.cli", "run", str(root / "mini.yaml"), "--out",
                               str(root / "out")], stdout=terminal, stderr=subprocess.STDOUT)
    assert done.returncode == 0, (root / "terminal.txt").read_text()
    return root


PROGRESS_LINE = re.compile(r"[\w ]+: [\d,]+/[\d,]+ [\w ]+ \([^)]*\)")
RAY_LINE = re.compile(r"INFO|WARNING|core_worker|raylet|Token authentication|logging_progress|ray\.|\(pid=")


def test_terminal_is_short_and_ray_free_while_ser_log_has_everything(run_dir):
    lines = (run_dir / "terminal.txt").read_text().splitlines()
    # progress lines between start and end come every 30 s, so their count depends on the machine's speed
    steady = [line for line in lines if not PROGRESS_LINE.fullmatch(line)]
    assert 10 <= len(steady) and len(lines) <= 40, "\n".join(lines)
    assert not [line for line in lines if RAY_LINE.search(line)], "\n".join(lines)
    assert lines[0] == "== prepare[demo-a]" and "tuned" in "\n".join(lines)
    log = (run_dir / "out" / "ser.log").read_text()
    assert " INFO ray." in log and " INFO ser.study: == tune" in log
    assert " DEBUG ser.tuning.per_fold: fold " in log                  # per-fold detail: in the log, not on the terminal


def test_a_copied_run_directory_reruns_as_up_to_date(run_dir, tmp_path):
    copy = tmp_path / "copied"
    shutil.copytree(run_dir / "out", copy)                  # new paths and modification times, same contents
    done = subprocess.run([sys.executable, "-m", "ser.cli", "run", str(run_dir / "mini.yaml"), "--out", str(copy)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    stages = [line for line in done.stderr.splitlines() if line.startswith("== ")]
    assert stages and all(line.endswith("up to date, skipped (--force reruns)") for line in stages), stages


def test_tuned_fusion_beats_speech_on_the_demo(run_dir):
    r = json.loads((run_dir / "out" / "results.json").read_text())
    assert r["mean"]["tuned"]["macro_f1"] > r["mean"]["speech"]["macro_f1"] + 0.03
    assert r["comparisons"]["tuned"]["bootstrap"]["ci_low"] > 0
    assert len(r["folds"]) == 8 and all("best" in f for f in r["folds"])
    cross = json.loads((run_dir / "out" / "cross.json").read_text())
    assert set(cross["matrix"]) == {"demo-a", "demo-b"}
    # the diagonal for the primary corpus is the run's own per-fold tuning
    assert cross["pairs"]["demo-a->demo-a"]["mean"] == r["mean"]


def test_leaderboard_and_transfer_table_of_the_demo_corpora(run_dir, tmp_path):
    """The leaderboard lists both corpora of the run with the figures cross.json holds for each; the report's
    transfer table shows UA and WA beside macro-F1, equal to each pair's means."""
    import pandas as pd

    from ser.reporting.leaderboard import write_leaderboard

    write_leaderboard([run_dir / "out"], tmp_path)
    board = pd.read_csv(tmp_path / "leaderboard.csv")
    cross = json.loads((run_dir / "out" / "cross.json").read_text())
    assert sorted(set(board["corpus"])) == ["demo-a", "demo-b"]
    for row in board.to_dict("records"):
        mean = cross["pairs"][f"{row['corpus']}->{row['corpus']}"]["mean"][row["system"]]
        assert [row["UA"], row["WA"], row["macro-F1"]] == pytest.approx([round(100 * mean[m], 2)
                                                                         for m in ("ua", "wa", "macro_f1")])
    transfer = pd.read_csv(run_dir / "out" / "tables" / "transfer.csv")
    for row in transfer.to_dict("records"):
        mean = cross["pairs"][f"{row['tuned on']}->{row['tested on']}"]["mean"]
        assert row["tuned UA"] == pytest.approx(round(100 * mean["tuned"]["ua"], 2))
        assert row["WA gain"] == pytest.approx(round(100 * (mean["tuned"]["wa"] - mean["speech"]["wa"]), 2))


def test_two_text_paths_from_one_inference_run(run_dir):
    """The demo's second path (VADER on a tiny random Whisper) is scored in the same Ray Data run, tuned on its own
    and compared: its transcripts are empty, so WER is 100% and its own tuning keeps speech."""
    import pandas as pd

    scores = pd.read_parquet(run_dir / "out" / "infer" / "scores.parquet")
    assert {"text_neg:asr", "transcript:asr", "reference_transcript"} <= set(scores.columns)
    assert (scores["transcript_source:asr"] == "asr:ser:tiny-random").all()
    r = json.loads((run_dir / "out" / "results.json").read_text())
    assert r["asr"]["per_path"]["asr"]["wer"] == 1.0 and r["asr"]["wer"] == 0.0
    assert r["mean"]["tuned:asr"]["macro_f1"] >= r["mean"]["speech"]["macro_f1"] - 0.02
    assert set(r["text_transfer"]["matrix"]) == {"reference", "asr"}
    md = (run_dir / "out" / "report.md").read_text()
    assert "| asr | asr:ser:tiny-random | 100.00 | 100.00 |" in md
    cross = json.loads((run_dir / "out" / "cross.json").read_text())
    assert set(cross["text_paths"]) == {"asr"} and set(cross["text_paths"]["asr"]["matrix"]) == {"demo-a", "demo-b"}
    assert "The same with text path `asr` in every corpus" in md and (run_dir / "out" / "tables" / "transfer_asr.csv").exists()
    # cross took demo-a's searches (both paths) from the tune stage and kept demo-b's beside its inference outputs:
    # per path one engine call of 8 searches (each corpus pooled, demo-b's 6 folds), not 16 (demo-a's 8 folds again)
    log = (run_dir / "out" / "ser.log").read_text().split("== cross")[1]
    assert log.count("8 search(es) in") == 2 and "16 search(es)" not in log
    assert len(list((run_dir / "out" / "corpora" / "demo-b" / "folds" / "text-asr").glob("fold-*.json"))) == 6


def test_report_holds_every_figure(run_dir):
    out = run_dir / "out"
    figures = sorted(p.name for p in (out / "figures").glob("*.png"))
    assert figures == ["confusions.png", "cross.png", "folds.png", "gain_by_wer.png", "gains.png", "sensitivity.png",
                       "sensitivity_classes.png", "transitions.png", "trials.png", "uncertainty.png"]
    md = (out / "report.md").read_text()
    assert set(re.findall(r"\(figures/(\w+\.png)\)", md)) == set(figures)
    assert "Tuned fusion improved macro-F1 by" in md and "| fold | n | speech macro-F1 | text macro-F1 |" in md
    headings = re.findall(r"^## (.+)$", md, flags=re.M)
    assert headings == ["Per fold", "All metrics", "Per class", "What changed", "Uncertainty of the speech model",
                        "Threshold sensitivity (hv gate)", "Search vs simple baselines", "Cross-dataset transfer",
                        "Text paths", "Breakdowns"]
    page = (out / "report.html").read_text()
    assert page.count("src='data:image/png;base64,") == len(figures) and "figures/" not in page
    assert (out / "figures" / "folds.png").stat().st_size > 10_000


def test_a_notebook_draws_the_report_figures_from_the_run(run_dir, tmp_path):
    """``ser.load_run(out).plot(name)`` is the report's figure ``name``: saved, the same bytes."""
    out, run = run_dir / "out", ser.load_run(run_dir / "out")
    assert sorted(FIGURES) == sorted(p.stem for p in (out / "figures").glob("*.png"))       # this run has them all
    for name in FIGURES:
        saved = save(run.plot(name), tmp_path / name)
        assert saved.read_bytes() == (out / "figures" / f"{name}.png").read_bytes(), name


def test_rerun_skips_finished_stages_and_recomputes_lost_outputs(run_dir, capsys):
    cfg, out = str(run_dir / "mini.yaml"), str(run_dir / "out")
    before = json.loads((run_dir / "out" / "run.json").read_text())
    assert set(before["stages"]) >= {"prepare[demo-a]", "infer[demo-a]", "tune", "sweep", "cross", "report"}
    assert before["packages"]["ray"] and before["config"]["tune"]["trials"] == 8
    capsys.readouterr()
    assert main(["run", cfg, "--out", out]) == 0
    printed = capsys.readouterr().err
    assert printed.count("up to date, skipped") == 7
    (run_dir / "out" / "sweep" / "sweep.json").unlink()          # a lost output is recomputed
    assert main(["run", cfg, "--out", out]) == 0
    printed = capsys.readouterr().err
    assert "== sweep\n" in printed and printed.count("up to date, skipped") == 6
