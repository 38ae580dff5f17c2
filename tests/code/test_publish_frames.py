"""Pure parts of ml.publish.core: the recommender-frame checks, batching, TSV layout, lock names."""

from __future__ import annotations

import io

import pandas as pd
import pytest

from ml.config import get_settings
from ml.contracts import TOPN_COLUMNS
from ml.publish.common import batches
from ml.publish.loader import write_topn_tsv
from ml.publish.locking import lock_name
from ml.quality.topn import check_topn_frame


def _frame(rows):
    return pd.DataFrame(rows, columns=TOPN_COLUMNS)


GOOD = [(2, 1, 10, 0.9, "repeat"), (2, 2, 11, 0.9, "covisit"), (1, 1, 12, 3.0, "global_pop")]


def test_good_frame_is_sorted_and_typed():
    df = check_topn_frame(_frame(GOOD), [1, 2, 3], n=5)
    assert df[["user_id", "rank"]].values.tolist() == [[1, 1], [2, 1], [2, 2]]
    assert str(df["item_id"].dtype) == "int64" and str(df["score"].dtype) == "float64"


@pytest.mark.parametrize(
    "rows, message",
    [
        ([(1, 1, 10, 0.9, "x"), (1, 3, 11, 0.8, "x")], "not 1..k contiguous"),
        ([(1, 2, 10, 0.9, "x")], "not 1..k contiguous"),
        ([(1, 1, 10, 0.9, "x"), (1, 2, 10, 0.8, "x")], "appears twice"),
        ([(1, 1, 10, float("nan"), "x")], "non-finite"),
        ([(1, 1, 10, float("inf"), "x")], "non-finite"),
        ([(1, 1, 10, 0.5, "x"), (1, 2, 11, 0.6, "x")], "rise with rank"),
        ([(9, 1, 10, 0.5, "x")], "not asked for"),
        ([(1, 1, 10, 0.5, "bad\tsource")], "short tokens"),
        ([(1, k, 10 + k, 1.0 / k, "x") for k in range(1, 7)], "rank 6 > n=5"),
        ([(1, None, 10, 0.5, "x")], "NULL rank"),
    ],
)
def test_broken_frames_are_rejected(rows, message):
    with pytest.raises(ValueError, match=message):
        check_topn_frame(_frame(rows), [1, 2], n=5)


def test_missing_columns_are_named():
    with pytest.raises(ValueError, match="lacks columns \\['source'\\]"):
        check_topn_frame(pd.DataFrame({"user_id": [1], "rank": [1], "item_id": [2], "score": [1.0]}), [1], 5)


def test_empty_frame_is_allowed():
    assert check_topn_frame(_frame([]), [1], 5).empty


def test_tsv_round_trips_exact_scores():
    df = check_topn_frame(_frame([(1, 1, 10, 0.1 + 0.2, "repeat"), (1, 2, 11, 1e-300, "repeat")]), [1], 5)
    buf = io.StringIO()
    write_topn_tsv(df, buf)
    lines = buf.getvalue().splitlines()
    assert lines[0].split("\t")[:3] == ["1", "1", "10"] and lines[0].endswith("\trepeat")
    back = pd.read_csv(
        io.StringIO(buf.getvalue()), sep="\t", header=None, names=TOPN_COLUMNS, float_precision="round_trip"
    )
    assert back["score"].tolist() == [0.1 + 0.2, 1e-300]


def test_batches_cover_everything_once():
    assert list(batches([1, 2, 3, 4, 5], 2)) == [[1, 2], [3, 4], [5]]
    with pytest.raises(ValueError):
        list(batches([1], 0))


def test_lock_names_fit_mysql_limit(monkeypatch):
    # the longest prefix get_settings accepts (its longest database name, recsys_serving, is 64 long)
    prefix = ("a_very_long_prefix_for_some_developer_" * 2)[: 64 - len("recsys_serving")]
    monkeypatch.setenv("RECSYS_DB_PREFIX", prefix)
    s = get_settings()
    assert len(s.serving_db) == 64
    name = lock_name(s, "publish")
    assert len(name) <= 64 and name.startswith("recsys:publish:")
    assert lock_name(s, "full") != name
