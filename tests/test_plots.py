"""Figures in a notebook: ``result.plot(name)`` draws a report figure, shows in Jupyter, leaves matplotlib alone."""

import matplotlib
import nbformat
import pytest
from nbclient import NotebookClient

import ser
from ser.reporting.figures import STYLE, png_bytes
from ser.data.synthetic import synthetic_scores

FAST = {"tune": {"engine": "optuna", "trials": 3, "space": {"soft": {"w": {"range": [0, 1], "steps": 6}}}},
        "sweep": {"tau_h": {"range": [0, 1.2], "steps": 5}, "tau_v": {"range": [0, 1.2], "steps": 5}},
        "evaluate": {"bootstrap": 20}}


@pytest.fixture(scope="module")
def scores():
    return synthetic_scores(n_folds=3, per_fold=90, seed=2, profile="iemocap-like")


def test_each_result_draws_its_figures_and_names_what_a_missing_one_needs(scores):
    tuned, evaluation, swept = ser.tune(scores, FAST), ser.evaluate(scores, FAST), ser.sweep(scores, FAST)
    for name in ("gains", "folds", "confusions", "transitions", "uncertainty", "trials"):
        assert len(tuned.plot(name).axes) >= 1, name
    assert tuned.plot().axes[0].get_ylabel() == "tuned − speech, macro-F1 (points)"           # the default: gains
    assert [t.get_text() for t in tuned.plot("folds").axes[0].get_xticklabels()] == sorted(scores["fold"].unique())
    assert swept.plot().axes[0].get_xlabel() == "τ_V (switch if V ≤ τ_V)"
    with pytest.raises(ValueError, match="^figure 'gains' needs a fusion system and its per-row predictions; this "
                                         "result draws: folds, confusions, uncertainty$"):
        evaluation.plot("gains")                                  # speech, text and oracle only: nothing fused
    with pytest.raises(ValueError, match="^figure 'folds' needs an evaluation or a tuning; this result draws: "
                                         "sensitivity, sensitivity_classes$"):
        swept.plot("folds")
    with pytest.raises(ValueError, match="^unknown figure 'gain'; figures are named folds, gains, confusions, "):
        tuned.plot("gain")


def test_drawing_keeps_the_callers_rcparams_and_backend(scores):
    tuned = ser.tune(scores, FAST)
    before, backend = dict(matplotlib.rcParams), matplotlib.get_backend()
    fig = tuned.plot("folds")
    assert dict(matplotlib.rcParams) == before and matplotlib.get_backend() == backend
    assert matplotlib.rcParams["font.size"] != STYLE["font.size"]
    assert fig.axes[0].yaxis.label.get_fontsize() == STYLE["font.size"]                        # ser's style inside
    assert png_bytes(fig)[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_figure_a_notebook_cell_returns_shows_as_an_image_once(tmp_path):
    """In a real Jupyter kernel: without pyplot (no inline backend loaded yet), and beside a pyplot figure."""
    cells = [f"import ser\nscores = ser.synthetic_scores(n_folds=3, per_fold=90, seed=2)\n"
             f"tuned = ser.tune(scores, {FAST!r})",
             "tuned.plot()",
             "import matplotlib.pyplot as plt\nplt.plot([0, 1])\ntuned.plot('folds')",
             "tuned"]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    NotebookClient(nb, timeout=240, kernel_name="python3").execute(cwd=str(tmp_path))
    shown = [[(o["output_type"], sorted(o["data"])) for o in cell.outputs if "data" in o] for cell in nb.cells[1:]]
    assert shown[0] == [("execute_result", ["image/png", "text/plain"])]
    assert sorted(shown[1]) == [("display_data", ["image/png", "text/plain"]),       # pyplot's own line plot
                                ("execute_result", ["image/png", "text/plain"])]     # ours, shown once
    assert shown[2] == [("execute_result", ["text/html", "text/plain"])]
