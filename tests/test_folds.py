import numpy as np
import pandas as pd
import pytest

from ser.data.folds import assign_folds, fold_splits, leave_one_group_out
from ser.data.schema import validate
from tests.conftest import make_table


def test_leave_one_group_out_on_any_column():
    splits = leave_one_group_out(np.array(["b", "a", "b", "c"]))
    assert [g for g, *_ in splits] == ["a", "b", "c"]
    g, train, test = splits[1]
    assert test.tolist() == [True, False, True, False] and (train == ~test).all()


def test_named_protocols_check_group_counts():
    df = pd.DataFrame({"speaker": [f"Ses0{i // 2 + 1}{'FM'[i % 2]}" for i in range(10)],
                       "session": [f"Ses0{i // 2 + 1}" for i in range(10)]})
    assert assign_folds(df, "iemocap-speaker")["fold"].nunique() == 10
    assert assign_folds(df, "iemocap-session")["fold"].nunique() == 5
    with pytest.raises(ValueError, match="expects 6 groups, found 5"):
        assign_folds(df, "msp_improv-session")
    with pytest.raises(ValueError, match="needs column 'gender'"):
        assign_folds(df, "column:gender")


def table_with_splits():
    """Folds a, b: rows 0-1 are the test rows; each model also scored the other fold's rows as val/train."""
    return validate(make_table(
        labels=["ang"] * 6, speech=[[0.7, 0.1, 0.1, 0.1]] * 6, text=[[0.2, 0.3, 0.5]] * 6,
        folds=["a", "b", "b", "b", "a", "a"], utt_id=["x", "y", "y", "y2", "x", "x2"],
        model_fold=["a", "b", "a", "a", "b", "b"], split=["test", "test", "val", "train", "val", "train"]))


@pytest.mark.parametrize("protocol, tuning_a, tuning_b", [
    ("oof", [1], [0]), ("val", [2], [4]), ("trainval", [2, 3], [4, 5]),
])
def test_tuning_sets_by_protocol(protocol, tuning_a, tuning_b):
    splits = {s.fold: s for s in fold_splits(table_with_splits(), protocol)}
    assert np.flatnonzero(splits["a"].tuning).tolist() == tuning_a
    assert np.flatnonzero(splits["b"].tuning).tolist() == tuning_b
    assert np.flatnonzero(splits["a"].test).tolist() == [0]
    for s in splits.values():
        assert not (s.tuning & s.test).any()


def test_empty_tuning_set_is_an_error_naming_the_fold():
    df = table_with_splits()
    df = df[~((df["model_fold"] == "b") & (df["split"] == "val"))].reset_index(drop=True)
    with pytest.raises(ValueError, match="fold 'b': protocol 'val' gives an empty tuning set"):
        fold_splits(df, "val")


def test_unknown_protocol():
    with pytest.raises(ValueError, match="tuning protocol 'loo' is not one of"):
        fold_splits(table_with_splits(), "loo")
