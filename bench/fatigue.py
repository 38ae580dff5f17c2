"""Benchmark (measures, asserts nothing): does fatigue demotion raise the CTR@10 of refreshed lists?

A simulated shop (ml.data.simulate) with reactive users (ml.data.sim_react, default ReactParams:
fatigue from the 2nd unengaged show, ×0.5 per show) is published with the real publisher, then
served for ``--rounds`` daily rounds: the visitors see the top 10 of their ``user_topn`` list, click,
cart, buy and browse on their own; both kinds of rows are loaded (impressions and events) and the
refresh re-scores the users who acted. After ``--warmup`` rounds a full publish fits N and decay on
the impression log (the demotion arm stores and applies them; the other arm runs with
``RECSYS_FATIGUE=0``) and the rounds go on. Both arms start from the same shop and use the same
random streams per round, in their own databases (``<prefix>fatigue_off_`` and ``..._on_``).

The recommender is a small one over the raw events kept in memory (category affinity of the user's
events × within-category popularity, bought items left out), standing in for the champion so the
bench needs no dbt build nor training; the two dbt serving marts the publisher copies are computed
the same way. Reported: CTR@10 of the lists served in the measured rounds that a refresh wrote, per
arm, the lift (on / off − 1) with a 95% bootstrap interval over users, and the fitted N and decay.

    nice -n 10 .venv/bin/python bench/fatigue.py                 # 1,500 users, 400 items, 8 rounds
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import replace
from datetime import datetime

import numpy as np
import pandas as pd

WEIGHT = {"browse": 1.0, "fav": 2.0, "cart": 3.0, "purchase": 4.0}


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--users", type=int, default=1500)
    p.add_argument("--items", type=int, default=400)
    p.add_argument("--days", type=int, default=7)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument(
        "--warmup", type=int, default=4, help="rounds before the full publish that fits N and decay"
    )
    p.add_argument("--n", type=int, default=20, help="items per published list")
    p.add_argument("--bootstrap", type=int, default=2000)
    p.add_argument("--prefix", default=os.environ.get("RECSYS_DB_PREFIX", "bench_"))
    return p.parse_args()


class MemoryRecommender:
    """Category affinity of the user's weighted events × the item's popularity quantile in its
    category; items the user bought are left out. ``affinity`` < 1 blends the user's category shares
    with a uniform one (0: the same list for everyone, the taste ignored; bench/ab_sim.py's champion)."""

    name = "bench_affinity"

    def __init__(self, items: pd.DataFrame, events: pd.DataFrame, affinity: float = 1.0) -> None:
        self.affinity = affinity
        self.item_id = items["item_id"].to_numpy(dtype=np.int64)
        self.cat = items["category_id"].to_numpy(dtype=np.int64)
        ev = events.dropna(subset=["item_id"])
        self.ev = ev.assign(
            w=ev["behavior_type"].map(WEIGHT).fillna(0.0), item_id=ev["item_id"].astype("int64")
        )
        pop = self.ev.groupby("item_id")["w"].sum().reindex(self.item_id, fill_value=0.0)
        self.pop_q = pop.groupby(self.cat).rank(pct=True).to_numpy()

    def recommend(self, user_ids: list[int], n: int) -> pd.DataFrame:
        ev = self.ev[self.ev["user_id"].isin(user_ids)]
        cat_of = pd.Series(self.cat, index=self.item_id)
        aff = ev.assign(c=cat_of.reindex(ev["item_id"]).to_numpy()).pivot_table(
            index="user_id", columns="c", values="w", aggfunc="sum", fill_value=0.0
        )
        aff = aff.reindex(index=user_ids, columns=np.unique(self.cat), fill_value=0.0)
        aff = aff.div(aff.sum(axis=1).replace(0, 1), axis=0).to_numpy()
        aff = self.affinity * aff + (1 - self.affinity) / aff.shape[1]
        cat_col = np.searchsorted(np.unique(self.cat), self.cat)
        score = (aff[:, cat_col] + 0.02) * (0.2 + self.pop_q)[None, :]
        bought = ev[ev["behavior_type"] == "purchase"]
        rows = pd.Index(user_ids).get_indexer(bought["user_id"])
        score[rows, np.searchsorted(self.item_id, bought["item_id"].to_numpy())] = -np.inf
        top = np.argsort(-score, axis=1, kind="stable")[:, :n]
        return pd.DataFrame(
            {
                "user_id": np.repeat(user_ids, n),
                "rank": np.tile(np.arange(1, n + 1), len(user_ids)),
                "item_id": self.item_id[top].ravel(),
                "score": np.take_along_axis(score, top, axis=1).ravel(),
                "source": self.name,
            }
        )


def stand_in_marts(s, items: pd.DataFrame, events: pd.DataFrame, n: int) -> None:
    """``serve_popular_topn`` (global and per category) and ``serve_user_intent_category`` from the
    in-memory events, as the dbt build would give the publisher."""
    from ml.db import connect

    ev = events.dropna(subset=["item_id"]).astype({"item_id": "int64"})
    ev = ev.assign(w=ev["behavior_type"].map(WEIGHT).fillna(0.0))
    ev = ev.merge(items[["item_id", "category_id", "in_stock"]], on="item_id")
    pop = ev[ev["in_stock"] == 1].groupby(["item_id", "category_id"], as_index=False)["w"].sum()
    pop = pop.sort_values(["w", "item_id"], ascending=[False, True])
    glob = pop.head(n).assign(scope="global")
    per = (
        pop.groupby("category_id").head(n).assign(scope=lambda d: "category:" + d["category_id"].astype(str))
    )
    popular = pd.concat([glob, per])
    popular["rank"] = popular.groupby("scope").cumcount() + 1
    per_user = ev.groupby(["user_id", "category_id"], as_index=False).agg(w=("w", "sum"), last=("ts", "max"))
    per_user["share"] = per_user["w"] / per_user.groupby("user_id")["w"].transform("sum").replace(0, 1)
    intent = per_user.sort_values(["user_id", "w"], ascending=[True, False]).groupby("user_id").head(1)
    conn = connect(s.marts_db, settings=s)
    with conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS serve_popular_topn")
        cur.execute("DROP TABLE IF EXISTS serve_user_intent_category")
        cur.execute(
            "CREATE TABLE serve_popular_topn (scope VARCHAR(64), `rank` INT, item_id BIGINT, score DOUBLE)"
        )
        cur.execute(
            "CREATE TABLE serve_user_intent_category (user_id BIGINT PRIMARY KEY, category_id BIGINT, "
            "strength DOUBLE, last_event_ts DATETIME(3))"
        )
        cur.executemany(
            "INSERT INTO serve_popular_topn VALUES (%s, %s, %s, %s)",
            list(
                zip(
                    popular["scope"],
                    popular["rank"].astype(int),
                    popular["item_id"].astype(int),
                    popular["w"],
                )
            ),
        )
        cur.executemany(
            "INSERT INTO serve_user_intent_category VALUES (%s, %s, %s, %s)",
            list(
                zip(
                    intent["user_id"].astype(int),
                    intent["category_id"].astype(int),
                    intent["share"],
                    [t.to_pydatetime() for t in intent["last"]],
                )
            ),
        )
    conn.close()


def _lists(s) -> pd.DataFrame:
    from ml.db import connect

    conn = connect(s.serving_db, settings=s)
    with conn.cursor() as cur:
        cur.execute("SELECT user_id, `rank`, item_id, generated_at FROM user_topn")
        rows = list(cur.fetchall())
    conn.close()
    return pd.DataFrame(rows, columns=["user_id", "rank", "item_id", "generated_at"])


def run_arm(a: argparse.Namespace, arm: str, data, cfg) -> tuple[pd.DataFrame, dict]:
    """One arm end to end; returns the measured impressions (user_id, clicked, refreshed) and the fit."""
    os.environ["RECSYS_DB_PREFIX"] = f"{a.prefix}fatigue_{arm}_"
    from ml.config import get_settings
    from ml.data.sim_load import load_simulation
    from ml.data.sim_react import ReactiveShop, load_reactions
    from ml.db import connect, drop_databases, init_db
    from ml.models.fatigue import exposure_table
    from ml.publish.full import publish_full
    from ml.publish.refresh import publish_refresh

    s = replace(get_settings(), fatigue=arm == "on")
    drop_databases(s, force=True)
    init_db(s, purpose="test")
    load_simulation(data, s)
    items, events = data.items, data.events
    shop = ReactiveShop(cfg, data=data)

    def publish(full: bool) -> None:
        stand_in_marts(s, items, events, a.n)
        rec = MemoryRecommender(items, events)
        if full:
            publish_full(rec, "bench", s, n=a.n, settle_seconds=0)
        else:
            publish_refresh(rec, "bench", s, n=a.n, settle_seconds=0)

    publish(True)
    start = pd.Timestamp(cfg.start) + pd.Timedelta(days=cfg.days)
    measured, fitted_at, reacted = [], None, []
    for r in range(a.rounds):
        lists = _lists(s)
        imps, new = shop.react(lists, (start + pd.Timedelta(days=r)).to_pydatetime(), r)
        if r >= a.warmup:
            served = imps.merge(lists[["user_id", "item_id", "generated_at"]], on=["user_id", "item_id"])
            measured.append(served.assign(refreshed=served["generated_at"] > fitted_at))
        load_reactions(imps, new, s)
        events = pd.concat([events, new], ignore_index=True)
        reacted.append(new)
        publish(r == a.warmup - 1)
        if r == a.warmup - 1:
            fitted_at = _lists(s)["generated_at"].max()
    conn = connect(s.serving_db, settings=s)
    with conn.cursor() as cur:
        cur.execute("SELECT min_shows, decay, reason FROM fatigue_params ORDER BY id DESC LIMIT 1")
        fit = dict(zip(("min_shows", "decay", "reason"), cur.fetchone() or (None, None, "off")))
    conn.close()
    shown = pd.concat(measured, ignore_index=True)
    table = exposure_table(shown, pd.concat(reacted, ignore_index=True), 3600)
    shown = shown.sort_values(["user_id", "item_id", "served_at"]).reset_index(drop=True)
    table = table.sort_values(["user_id", "item_id", "served_at"]).reset_index(drop=True)
    return shown.assign(clicked=table["clicked"].to_numpy()), fit


def lift_interval(off: pd.DataFrame, on: pd.DataFrame, reps: int, seed: int) -> tuple[float, float, float]:
    """Lift of CTR (on / off − 1) and its 95% bootstrap interval, resampling users (paired)."""
    users = np.union1d(off["user_id"].unique(), on["user_id"].unique())
    per = [
        d.groupby("user_id")["clicked"].agg(["sum", "count"]).reindex(users, fill_value=0) for d in (off, on)
    ]
    c = [p["sum"].to_numpy(float) for p in per]
    m = [p["count"].to_numpy(float) for p in per]
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(users), (reps, len(users)))
    boot = (c[1][idx].sum(1) / m[1][idx].sum(1)) / (c[0][idx].sum(1) / m[0][idx].sum(1)) - 1
    point = (c[1].sum() / m[1].sum()) / (c[0].sum() / m[0].sum()) - 1
    return float(point), float(np.quantile(boot, 0.025)), float(np.quantile(boot, 0.975))


def main() -> None:
    a = _args()
    from ml.data.sim_config import SimConfig
    from ml.data.simulate import simulate

    t0 = time.perf_counter()
    cfg = SimConfig(users=a.users, items=a.items, days=a.days, seed=a.seed, start=datetime(2026, 10, 1))
    data = simulate(cfg)
    out = {}
    for arm in ("off", "on"):
        out[arm] = run_arm(a, arm, data, cfg)
        print(f"arm {arm}: done at {time.perf_counter() - t0:.0f}s; fit: {out[arm][1]}")
    for label, pick in (("refreshed lists", lambda d: d[d["refreshed"]]), ("all served lists", lambda d: d)):
        off, on = pick(out["off"][0]), pick(out["on"][0])
        lift, lo, hi = lift_interval(off, on, a.bootstrap, a.seed)
        print(
            f"{label}: CTR@10 off {off['clicked'].mean():.4f} ({len(off):,} shows, {off['user_id'].nunique():,} users) | "
            f"on {on['clicked'].mean():.4f} ({len(on):,} shows, {on['user_id'].nunique():,} users) | "
            f"lift {lift:+.1%} [95% CI {lo:+.1%}, {hi:+.1%}]"
        )
    print(f"measured rounds {a.warmup + 1}..{a.rounds} of {a.rounds}; total {time.perf_counter() - t0:.0f}s")


if __name__ == "__main__":
    main()
