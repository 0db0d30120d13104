"""Hostile input and faults, through the real CLI: names that try to become markup or formulas, inputs that
try to exhaust memory, damaged and half-written run directories, and Ray listening beyond loopback."""

from __future__ import annotations

import csv
import errno
import html.parser
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ser.cli import main
from ser._util.io import STAGED_PREFIX, output_lock
from ser.data.schema import validate
from ser.data.synthetic import synthetic_scores
from tests.test_corpora import fake_msp

FAST = "tune: {engine: optuna, trials: 4}\nevaluate: {bootstrap: 20}\n"
REPO = Path(__file__).resolve().parent.parent

HOSTILE = {
    "script": "<script>document.title='pwned'</script>",
    "img": '"><img src=x onerror="document.body.dataset.pwned=1">',
    "pipes": "a|b|c",
    "newline": "line\nbreak\n\nparagraph",
    "mathtext": r"$\alpha$ and $x^2$",
    "hyperlink": '=HYPERLINK("http://evil.example/?x","click")',
    "plus": "+cmd|' /C calc'!A0",
    "at": "@SUM(1+1)*cmd|' /C calc'!A0",
    "minus": "-2+3+cmd|' /C calc'!A0",
    "long": "x" * 300,
}


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory):
    """A tuned run and its report on a table whose every fold, condition and gender value is hostile."""
    d = tmp_path_factory.mktemp("hostile")
    df = synthetic_scores(n_folds=len(HOSTILE), per_fold=60, seed=2, profile="text-strong")
    df["fold"] = df["fold"].map(dict(zip(sorted(df["fold"].unique()), HOSTILE.values())))
    rng = np.random.default_rng(0)
    df["condition"] = rng.choice(["=1+1", "+cmd|' /C calc'!A0", "<b>scripted</b>"], len(df))
    df["gender"] = rng.choice(["@x", "-y|z"], len(df))
    df["utt_id"] = [f"<i>{i}</i>|=u{i}" for i in range(len(df))]
    validate(df).to_parquet(d / "s.parquet")
    (d / "c.yaml").write_text(FAST)
    out = d / "run"
    assert main(["tune", "--scores", str(d / "s.parquet"), "--config", str(d / "c.yaml"), "--out", str(out)]) == 0
    assert main(["report", "--run", str(out)]) == 0
    return out


def _md_table_widths(md: str) -> list[set[int]]:
    """The cell counts of each Markdown table's rows (split on pipes that are not escaped)."""
    tables, current = [], None
    for line in md.splitlines():
        if line.startswith("|"):
            cells = len(re.split(r"(?<!\\)\|", line.strip())) - 2
            current = (current or set()) | {cells}
        elif current is not None:
            tables.append(current)
            current = None
    return tables + ([current] if current else [])


class _Markup(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.handlers = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.handlers += [(tag, name) for name, _ in attrs if name.startswith("on")]
        if tag == "img":
            assert dict(attrs)["src"].startswith("data:image/png;base64,"), attrs


@pytest.mark.parametrize("name", HOSTILE)
def test_a_hostile_fold_name_is_plain_text_in_report_md(hostile_run, name):
    md = (hostile_run / "report.md").read_text()
    assert "<script" not in md and "<img" not in md and "<b>" not in md and "<i>" not in md
    assert all(len(widths) == 1 for widths in _md_table_widths(md)), "a name added a table column"
    if name in ("script", "img"):
        assert re.sub(r"\s+", " ", HOSTILE[name]).replace("<", "&lt;")[:20] in md       # shown, as text


@pytest.mark.parametrize("name", HOSTILE)
def test_a_hostile_fold_name_injects_no_element_into_report_html(hostile_run, name):
    page = (hostile_run / "report.html").read_text()
    parser = _Markup()
    parser.feed(page)
    assert "script" not in parser.tags and parser.handlers == []
    assert set(parser.tags) <= {"html", "head", "meta", "title", "style", "body", "h1", "h2", "p", "strong", "code",
                                "figure", "img", "figcaption", "table", "tr", "th", "td", "nav", "ol", "li", "a",
                                "div"}


@pytest.mark.parametrize("name", HOSTILE)
def test_no_csv_cell_is_a_spreadsheet_formula(hostile_run, name):
    seen = []
    for path in (hostile_run / "tables").glob("*.csv"):
        for row in csv.reader(path.open()):
            for cell in row:
                seen.append(cell)
                if cell[:1] in ("=", "+", "-", "@"):
                    float(cell.replace(",", ""))               # a number such as -0.22 is fine; text is not
    text = HOSTILE[name]
    if text[:1] in "=+-@":
        assert "'" + text in seen, f"{name} not found quoted in any table"


@pytest.mark.parametrize("name", HOSTILE)
def test_tex_tables_keep_their_shape_with_a_hostile_fold_name(hostile_run, name):
    for path in (hostile_run / "tables").glob("*.tex"):
        tex = path.read_text()
        body = tex.split(r"\midrule")[1].split(r"\bottomrule")[0]
        assert "\n\n" not in tex, f"{path.name}: a blank line ends the tabular"
        head = tex.split(r"\toprule")[1].split(r"\midrule")[0]
        columns = len(re.findall(r"(?<!\\)&", head))
        for row in filter(str.strip, body.split("\\\\\n")):
            assert len(re.findall(r"(?<!\\)&", row)) == columns, f"{path.name}: {row!r}"
        assert "<script" not in tex and r"$\alpha" not in tex          # '$' of a name is \$, not math


def test_a_mathtext_fold_name_is_drawn_as_text(hostile_run):
    assert (hostile_run / "figures" / "gains.png").stat().st_size > 0


def test_long_ids_give_bounded_file_names_that_still_resume(hostile_run):
    names = [p.name for p in (hostile_run / "folds").iterdir()]
    assert len(names) == len(HOSTILE) and max(map(len, names)) <= 130
    long = [json.loads((hostile_run / "folds" / n).read_text())["fold"] for n in names if "~" in n]
    assert long == [HOSTILE["long"]]


@pytest.mark.skipif(not shutil.which("chromium"), reason="needs Debian's chromium (apt-get install chromium)")
def test_in_a_real_browser_no_script_runs_and_no_element_is_injected(hostile_run, tmp_path):
    dom = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                          "--no-first-run", "--disable-background-networking", "--disable-component-update",
                          "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=2000",
                          "--dump-dom", (hostile_run / "report.html").as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    assert "<table" in dom, "the browser rendered nothing"
    assert "<title>pwned</title>" not in dom and "data-pwned" not in dom
    after = _Markup()                                      # the DOM after any script would have run
    after.feed(dom)
    assert "script" not in after.tags and after.handlers == []


# ---- bad input: one line naming it, exit 2, no traceback --------------------------------------------------------

@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    table = validate(synthetic_scores(n_folds=3, per_fold=50, seed=4, profile="text-strong"))
    table.to_parquet(d / "s.parquet")
    table.drop(columns=["speech_sad"]).to_parquet(d / "nosad.parquet")
    table.head(30).to_csv(d / "semi.csv", sep=";", index=False)
    table.head(30).to_csv(d / "tabs.csv", sep="\t", index=False)
    pd.DataFrame().to_parquet(d / "noschema.parquet")
    table[["utt_id", "corpus", "label", "fold"]].assign(path="a.wav").to_parquet(d / "manifest.parquet")
    lol = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'] + [
        f"{b}: &{b} [{', '.join([f'*{a}'] * 9)}]" for a, b in zip("abcdefgh", "bcdefghi")]
    (d / "bomb.yaml").write_text("\n".join(lol) + "\n")
    (d / "name.yaml").write_text("name: 123\n")
    (d / "root.yaml").write_text("prepare: {root: 7}\n")
    (d / "manifest_key.yaml").write_text("infer: {manifest: [1, 2]}\n")
    return d


BATTERY = [
    ("evaluate --scores {d}/nosad.parquet", "missing column(s) ['speech_sad']"),
    ("evaluate --scores {d}/semi.csv", "separated by semicolons"),
    ("evaluate --scores {d}/tabs.csv", "separated by tabs"),
    ("evaluate --scores {d}/noschema.parquet", "has no columns (an empty schema)"),
    ("evaluate --scores {d}/manifest.parquet", "is a manifest"),
    ("tune --scores {d}/manifest.parquet", "run `ser infer"),
    ("evaluate --scores {d}/s.parquet --config {d}/bomb.yaml", "refused before expanding it"),
    ("evaluate --scores {d}/s.parquet --config {d}/name.yaml", "name must be text, got int 123"),
    ("evaluate --scores {d}/s.parquet --config {d}/root.yaml", "prepare.root must be text, got int 7"),
    ("evaluate --scores {d}/s.parquet --config {d}/manifest_key.yaml", "infer.manifest must be text, got list"),
    ("tune --scores {d}/s.parquet --set 'tune.space.select.tau_h={range: [0, 1.4], steps: 1000000}'",
     "tune.space.select.tau_h/tau_v steps"),
    ("tune --scores {d}/s.parquet --set 'tune.space.soft.w={range: [0, 1], steps: 100000000}'",
     "tune.space.soft.w.steps: 100,000,000 weights would need about"),
    ("sweep --scores {d}/s.parquet --set 'sweep.tau_h={range: [0, 1.4], steps: 10000000}'",
     "sweep.tau_h/tau_v steps"),
    ("report --run {d}/no/such/deep/dir", "is not a run directory"),
    ("submit --address http://127.0.0.1:9 -- tune --scores x.parquet", "no Ray job server answers there"),
]


@pytest.mark.parametrize("argv,message", BATTERY, ids=[b[0].split(" --")[0] + ":" + b[1][:30] for b in BATTERY])
def test_bad_input_is_one_line_naming_it_with_exit_2(inputs, tmp_path, capsys, argv, message):
    args = shlex.split(argv.replace("{d}", str(inputs)))
    if args[0] != "report" and args[0] != "submit":
        args += ["--out", str(tmp_path / "out")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert not (inputs / "no").exists()


def test_an_unwritable_out_for_synth_is_named_with_exit_2(tmp_path, capsys, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")
    monkeypatch.setattr("ser._util.io.tempfile.mkstemp", refuse)        # root ignores chmod; a read-only disk does not
    assert main(["synth", "--out", str(tmp_path / "s.parquet"), "--folds", "2", "--per-fold", "20"]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path} is not writable (Permission denied): cannot write s.parquet" in err


def test_a_full_disk_names_the_file_and_the_free_space(tmp_path, capsys, monkeypatch):
    import ser._util.io

    def full(df, path, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(ser._util.io.pd.DataFrame, "to_parquet", full)
    assert main(["synth", "--out", str(tmp_path / "s.parquet"), "--folds", "2", "--per-fold", "20"]) == 1
    err = capsys.readouterr().err
    assert f"disk full writing {tmp_path / 's.parquet'}" in err and "free on that file system" in err
    assert list(tmp_path.iterdir()) == []                           # no temporary file left behind


def test_corrupt_msp_improv_wavs_are_recorded_and_the_rest_prepared(tmp_path, capsys):
    root = fake_msp(tmp_path / "msp")
    bad = next(root.rglob("*S02H*.wav"))
    bad.write_bytes(b"RIFF....WAVEnot audio at all")
    assert main(["prepare", "--corpus", "msp_improv", "--root", str(root), "--out", str(tmp_path / "m.parquet")]) == 0
    assert bad.name in capsys.readouterr().err
    manifest = pd.read_parquet(tmp_path / "m.parquet").set_index("utt_id")
    assert np.isnan(manifest.loc[bad.stem, "duration_s"]) and manifest["duration_s"].notna().sum() == 1
    for wav in root.rglob("*.wav"):
        wav.write_bytes(b"garbage")
    assert main(["prepare", "--corpus", "msp_improv", "--root", str(root), "--out", str(tmp_path / "n.parquet")]) == 2
    assert "none of the 2 WAV files" in capsys.readouterr().err


# ---- damaged and half-written run directories --------------------------------------------------------------------

@pytest.fixture
def tuned(tmp_path):
    validate(synthetic_scores(n_folds=4, per_fold=60, seed=5, profile="text-strong")).to_parquet(tmp_path / "s.parquet")
    (tmp_path / "c.yaml").write_text(FAST)
    out = tmp_path / "run"
    args = ["--scores", str(tmp_path / "s.parquet"), "--config", str(tmp_path / "c.yaml"), "--out", str(out)]
    assert main(["tune", *args]) == 0
    assert main(["report", "--run", str(out)]) == 0
    return out, args


def _snapshot(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*")
            if p.is_file() and p.name not in ("ser.log", ".ser.lock") and "folds" not in p.parts}


def test_a_failed_rerun_leaves_the_previous_run_byte_for_byte(tuned, capsys, monkeypatch):
    out, args = tuned
    before = _snapshot(out)
    import ser.reporting.results

    written = []

    def full_after_one(obj, path):                  # predictions and trials are staged, then results.json fails
        written.append(path)
        raise OSError(errno.ENOSPC, "No space left on device", str(path))
    monkeypatch.setattr(ser.reporting.results, "write_json", full_after_one)
    assert main(["tune", *args, "--set", "seed=7"]) == 1
    assert "disk full" in capsys.readouterr().err and written
    monkeypatch.undo()
    assert _snapshot(out) == before
    assert main(["report", "--run", str(out)]) == 0
    assert _snapshot(out) == before
    assert not list(out.glob(f"{STAGED_PREFIX}*"))


def test_a_killed_rerun_leaves_the_previous_run_readable_as_it_was(tuned):
    out, args = tuned
    before = _snapshot(out)
    proc = subprocess.Popen([sys.executable, "-m", "ser.cli", "tune", *args, "--set", "seed=9",
                             "--set", "tune.trials=400"], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    folds = {p: p.stat().st_mtime_ns for p in (out / "folds").glob("fold-*.json")}
    deadline = time.time() + 120
    while time.time() < deadline and all(p.stat().st_mtime_ns == t for p, t in folds.items()):
        time.sleep(0.1)                                    # until the rerun has replaced a fold's saved search
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert _snapshot(out) == before
    assert main(["report", "--run", str(out)]) == 0
    assert _snapshot(out) == before


def test_a_damaged_fold_file_is_named_and_that_fold_searched_again(tuned, capsys):
    out, args = tuned
    damaged = sorted((out / "folds").glob("fold-*.json"))[1]
    damaged.write_text(damaged.read_text()[:200])
    capsys.readouterr()
    assert main(["tune", *args, "--resume"]) == 0
    err = capsys.readouterr().err
    assert f"{damaged} is damaged" in err and "searching that fold again" in err
    assert json.loads(damaged.read_text())["trials"]


def test_a_results_file_missing_a_key_is_named_not_a_traceback(tuned, capsys):
    out, _ = tuned
    result = json.loads((out / "results.json").read_text())
    del result["pooled"]
    (out / "results.json").write_text(json.dumps(result))
    assert main(["report", "--run", str(out)]) == 2
    err = capsys.readouterr().err
    assert "'pooled'" in err and "Traceback" not in err and "rerun the command" in err


def test_leftovers_of_killed_writes_are_removed_and_a_log_symlink_is_not_followed(tuned, tmp_path):
    out, args = tuned
    for stale in (out / ".results.json.abcd1234.tmp", out / "folds" / ".fold-x.json.zz9_zz9z.tmp"):
        stale.write_bytes(b"")
    outside = tmp_path / "outside.txt"
    outside.write_text("keep\n")
    (out / "ser.log").unlink()
    (out / "ser.log").symlink_to(outside)
    assert main(["tune", *args]) == 0
    assert not list(out.rglob("*.tmp"))
    assert outside.read_text() == "keep\n" and not (out / "ser.log").is_symlink()


def test_a_complete_staged_set_cut_short_by_a_kill_is_finished_by_the_next_command(tmp_path):
    out = tmp_path / "run"
    stage = out / f"{STAGED_PREFIX}killed"
    (stage / "tables").mkdir(parents=True)
    (out / "results.json").write_text("old")
    (stage / "tables" / "t.csv").write_text("new table")     # results.json was moved before the kill
    (stage / ".complete").write_text("results.json\ntables/t.csv")
    incomplete = out / f"{STAGED_PREFIX}never-finished"
    incomplete.mkdir()
    (incomplete / "results.json").write_text("half")
    with output_lock(out, "report"):
        pass
    assert (out / "tables" / "t.csv").read_text() == "new table" and (out / "results.json").read_text() == "old"
    assert not list(out.glob(f"{STAGED_PREFIX}*"))


# ---- Ray listens on loopback only --------------------------------------------------------------------------------

def _listening_sockets_of(argv: list[str], tmp_path: Path) -> set[tuple[str, int, str]]:
    """Run ``ser ARGV`` as its own process and collect every TCP socket its process tree listens on."""
    psutil = pytest.importorskip("psutil")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    proc = subprocess.Popen([sys.executable, "-m", "ser.cli", *argv], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    listening: set[tuple[str, int, str]] = set()
    while proc.poll() is None:
        try:
            family = [proc.pid] + [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            break
        for pid in family:
            try:
                for c in psutil.Process(pid).net_connections(kind="tcp"):
                    if c.status == psutil.CONN_LISTEN:
                        listening.add((c.laddr.ip, c.laddr.port, psutil.Process(pid).name()))
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
        time.sleep(0.1)
    assert proc.wait() == 0, proc.stderr.read()
    return listening


@pytest.mark.parametrize("command", ["tune", "infer"])
def test_a_local_ray_run_listens_on_loopback_only(tmp_path, command):
    if command == "tune":
        validate(synthetic_scores(n_folds=3, per_fold=60, seed=6, profile="text-strong")).to_parquet(
            tmp_path / "s.parquet")
        argv = ["tune", "--scores", str(tmp_path / "s.parquet"), "--out", str(tmp_path / "out"), "--engine", "ray",
                "--set", "tune.trials=6"]
    else:
        (tmp_path / "c.yaml").write_text("prepare: {corpus: demo-a, per_speaker: 3, root: %s}\n"
                                         "infer: {speech: {backend: acoustic}, sentiment: {backend: vader}}\n"
                                         % (tmp_path / "corpus"))
        assert main(["prepare", "--config", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "m.parquet")]) == 0
        argv = ["infer", "--config", str(tmp_path / "c.yaml"), "--manifest", str(tmp_path / "m.parquet"), "--out",
                str(tmp_path / "out")]
    listening = _listening_sockets_of(argv, tmp_path)
    assert len(listening) >= 3, listening                    # the GCS, the raylet and workers were seen
    off = {s for s in listening if s[0] not in ("127.0.0.1", "::ffff:127.0.0.1", "::1")}
    assert not off, f"listening beyond loopback: {sorted(off)}"


@pytest.mark.skipif(not shutil.which("pdflatex"), reason="needs pdflatex (apt-get install texlive-latex-recommended)")
def test_every_tex_table_compiles_with_hostile_names(hostile_run, tmp_path):
    tables = sorted((hostile_run / "tables").glob("*.tex"))
    assert tables
    doc = tmp_path / "tables.tex"
    doc.write_text("\\documentclass{article}\n\\usepackage{booktabs}\n\\usepackage[T1]{fontenc}\n"
                   "\\begin{document}\n" + "".join(f"\\input{{{t}}}\n\n" for t in tables) + "\\end{document}\n")
    done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", doc.name], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:]
    assert (tmp_path / "tables.pdf").stat().st_size > 0


def test_markdown_escapes_what_could_be_markup_once_and_leaves_prose_alone():
    from ser.reporting.escape import markdown_cell, markdown_text

    assert markdown_text("<script>a&lt;b</script> p < 0.001 & x `<b>`") == \
        "&lt;script>a&amp;lt;b&lt;/script> p < 0.001 & x `<b>`"
    assert markdown_cell("a|b\nc") == "a\\|b c"
