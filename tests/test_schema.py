import numpy as np
import pandas as pd
import pytest

from ser.data.importers import apply_mapping
from ser.data.schema import ScoreTableError, read_scores, validate
from tests.conftest import make_table

P = [0.7, 0.1, 0.1, 0.1]
Q = [0.2, 0.3, 0.5]


def good(n=3, **kw):
    return make_table(["ang", "hap", "sad"][:n], [P] * n, [Q] * n, **kw)


def test_valid_table_gets_defaults():
    out = validate(good())
    assert list(out["split"]) == ["test"] * 3
    assert list(out["model_fold"]) == ["f0"] * 3
    assert list(out["transcript"]) == [""] * 3


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.drop(columns="speech_hap"), "missing column(s) ['speech_hap']"),
    (lambda d: d.assign(speech_ang=[0.7, np.nan, 0.7]), "column 'speech_ang' has NaN in 1 row(s): row 1 (utt_id=u1)"),
    (lambda d: d.assign(text_pos=[0.5, 1.2, 0.5], text_neg=[0.2, -0.5, 0.2]),
     "column 'text_neg' has probabilities outside [0, 1] in 1 row(s): row 1"),
    (lambda d: d.assign(speech_ang=[0.7, 0.7, 0.8]), "do not sum to 1 ± 0.001 in 1 row(s): row 2 (utt_id=u2)"),
    (lambda d: d.assign(label=["ang", "fru", "sad"]), "unknown label(s) ['fru']"),
    (lambda d: d.assign(utt_id=["a", "b", "a"]), "duplicate key ['corpus', 'utt_id', 'model_fold'] in 1 row(s): row 2"),
    (lambda d: d.assign(split=["test", "dev", "test"]), "column 'split' must be one of"),
    (lambda d: d.assign(model_fold=["f0", "f9", "f0"], split=["test", "val", "test"]), "fold(s) ['f9'] have no test rows"),
])
def test_validation_errors_name_column_and_rows(mutate, message):
    with pytest.raises(ScoreTableError) as err:
        validate(mutate(good()))
    assert message in str(err.value)


def test_csv_and_parquet_round_trip(tmp_path):
    df = validate(good(fold=["Ses01F", "Ses01F", "007"]))
    df.to_csv(tmp_path / "s.csv", index=False)
    df.to_parquet(tmp_path / "s.parquet")
    a, b = read_scores(tmp_path / "s.csv"), read_scores(tmp_path / "s.parquet")
    assert list(a["fold"]) == ["Ses01F", "Ses01F", "007"]   # ids stay strings
    pd.testing.assert_frame_equal(a[b.columns], b, check_dtype=False)


def test_unsupported_format_and_missing_file(tmp_path):
    with pytest.raises(ScoreTableError, match="does not exist"):
        read_scores(tmp_path / "nope.parquet")
    (tmp_path / "x.txt").write_text("x")
    with pytest.raises(ScoreTableError, match="unsupported format"):
        read_scores(tmp_path / "x.txt")


def test_importer_maps_codes_columns_and_top_label_sentiment():
    raw = pd.DataFrame({"id": ["a", "b"], "emo": ["A", "S"], "spk": ["Ses01F", "Ses01M"],
                        "0_Score": [0.1, 0.2], "1_Score": [0.2, 0.2], "2_Score": [0.3, 0.2], "3_Score": [0.4, 0.4],
                        "sent": ["negative", "positive"], "conf": [0.8, 0.6]})
    mapping = {"columns": {"id": "utt_id", "emo": "label", "spk": "fold", "0_Score": "speech_ang",
                           "1_Score": "speech_hap", "2_Score": "speech_neu", "3_Score": "speech_sad"},
               "labels": {"A": "ang", "H": "hap", "N": "neu", "S": "sad"},
               "sentiment": {"label": "sent", "score": "conf",
                             "codes": {"negative": "neg", "neutral": "neu", "positive": "pos"}},
               "constants": {"corpus": "iemocap"}}
    out = apply_mapping(raw, mapping)
    assert list(out["label"]) == ["ang", "sad"]
    np.testing.assert_allclose(out[["text_neg", "text_neu", "text_pos"]].to_numpy(), [[0.8, 0.1, 0.1], [0.2, 0.2, 0.6]])
    assert set(out["corpus"]) == {"iemocap"}


def test_importer_errors_name_the_problem():
    raw = pd.DataFrame({"emo": ["X"]})
    with pytest.raises(ScoreTableError, match=r"renames column\(s\) \['id'\]"):
        apply_mapping(raw, {"columns": {"id": "utt_id"}})
    with pytest.raises(ScoreTableError, match=r"label code\(s\) \['X'\] are not in the mapping"):
        apply_mapping(raw.rename(columns={"emo": "label"}), {"labels": {"A": "ang"}})
    with pytest.raises(ValueError, match=r"unknown key 'colums'; did you mean 'columns'\?"):
        apply_mapping(raw, {"colums": {}})
