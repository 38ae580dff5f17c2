"""OTTO-style "rest of session" cuts (ml.features.protocol.session_cuts) on hand-made label windows."""

from __future__ import annotations

import pandas as pd
import pytest

from ml.features.protocol import session_cuts

T0 = pd.Timestamp("2026-10-10 00:00:00")


def _ev(user: int, session: str, minute: float, item: int | None, kind: str = "browse") -> dict:
    return {
        "user_id": user,
        "session_id": session,
        "ts": T0 + pd.Timedelta(minutes=minute),
        "item_id": item,
        "behavior_type": kind,
    }


def _window() -> pd.DataFrame:
    rows = [
        # user 1: search then three views in s1, then a later session s2 (never cut, never label)
        _ev(1, "s1", 1, None, "search"),
        _ev(1, "s1", 2, 10),
        _ev(1, "s1", 3, 11),
        _ev(1, "s1", 4, 12, "cart"),
        _ev(1, "s2", 300, 99),
        # user 2: one event only -> nothing to reveal and predict
        _ev(2, "t1", 5, 20),
        # user 3: the session ends with searches only after its first item -> the cut must leave an item event
        _ev(3, "u1", 1, 30),
        _ev(3, "u1", 2, 31),
        _ev(3, "u1", 3, None, "search"),
        _ev(3, "u1", 4, None, "search"),
        # user 4: not seen before the cut -> not evaluated
        _ev(4, "v1", 1, 40),
        _ev(4, "v1", 2, 41),
    ]
    return pd.DataFrame(rows).astype({"item_id": "Int64"})


def test_each_seen_user_first_session_is_cut_inside_it() -> None:
    cuts = session_cuts(_window(), users=[1, 2, 3], seed=0)
    assert sorted(cuts["user_id"]) == [1, 3]  # 2 has a single event, 4 was not seen before the cut
    by_user = cuts.set_index("user_id")
    assert by_user.loc[1, "session_id"] == "s1"
    # the cut is one of the session's later times: something revealed, an item event left
    assert by_user.loc[1, "cut_ts"] in {T0 + pd.Timedelta(minutes=m) for m in (2, 3, 4)}
    assert by_user.loc[3, "cut_ts"] == T0 + pd.Timedelta(minutes=2)  # only choice leaving item 31 to predict


def test_cuts_are_seeded_and_vary_with_the_seed() -> None:
    w = _window()
    assert session_cuts(w, [1, 3], seed=5).equals(session_cuts(w, [1, 3], seed=5))
    seen = {session_cuts(w, [1], seed=s).loc[0, "cut_ts"] for s in range(30)}
    assert seen == {T0 + pd.Timedelta(minutes=m) for m in (2, 3, 4)}  # every allowed cut is drawn


@pytest.mark.parametrize("users", [[], [2], [5]])
def test_no_user_to_cut_gives_an_empty_frame(users) -> None:
    cuts = session_cuts(_window()[lambda d: d["user_id"].isin([2, 4])], users=users)
    assert cuts.empty and list(cuts.columns) == ["user_id", "session_id", "cut_ts"]
