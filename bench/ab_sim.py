"""Benchmark (measures, asserts nothing): does `recsys ab report` see a truly better challenger on a
simulated A/B, and no difference on an A/A?

A simulated shop (ml.data.simulate; 2,000 users, 1,000 items, 7 days by default) with reactive users
(ml.data.sim_react, default ReactParams) runs an experiment end to end, in its own databases
(``<prefix>absim_<case>_``):

1. a full publish with ``ab_share`` 0.5 and the case's salt: the champion's lists in ``user_topn``,
   the challenger's in ``user_topn_challenger``, the run in ``ab_experiment`` (the real publisher);
2. ``--rounds`` daily rounds: the users who visit (drawn by the reactive shop) ask the real reader
   (ml.serving.app through FastAPI's TestClient) for ``/recommendations/{user}?n=10``; the reader
   picks their arm, serves that arm's list and logs the impressions with the arm, exactly as in
   production. Only the reader's clock is the simulation's: ``ml.serving.impressions.now_utc``
   returns the visit's simulated time, so served_at and the reactions line up. The users react to
   the list they got (clicks, carts, purchases, own browsing), the events are loaded, and the
   refresh rewrites each acting user's list in their own arm's table (a full publish in the middle
   round continues the run and refits fatigue, as in production);
3. the outcome marts (``scripts/dbt.sh build --select +fct_served_outcomes``) and the report
   (:func:`ml.models.ab_outcomes.ab_report`, what `recsys ab report` prints).

The simulated clock starts just after the wall clock (the run's ``started_at`` is the publisher's
UTC_TIMESTAMP, and the report counts impressions served from then on), so the rounds' events lie in
the future of the wall clock: they are validated against the simulated clock
(``load_reactions(now=...)``).

Recommenders (bench/fatigue.py's MemoryRecommender, no training needed). The challenger is always the
taste-aware one (the user's category affinity × the item's popularity in its category). The champion
is weaker by a lot (``ab``: taste-blind, ``affinity=0``, the most popular items of every category for
everyone), by less (``ab_close``: taste-aware but a random order within the category), by little
(``ab_small``: half popularity, half random order) or not at all (``aa``: the same recommender in
both arms under two version names, since the publisher refuses a challenger that *is* the champion,
and another salt). Ground truth: the expected CTR@10 of each recommender's first lists when it
serves every user (the reactive users' click probability, no fatigue yet).

    nice -n 10 .venv/bin/python bench/ab_sim.py                  # 4 cases × 1 seed: ~3 minutes
    nice -n 10 .venv/bin/python bench/ab_sim.py --seeds 1 2 3 --cases ab aa
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from unittest import mock

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fatigue import MemoryRecommender, stand_in_marts  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SHARE = 0.5


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--users", type=int, default=2000)
    p.add_argument("--items", type=int, default=1000)
    p.add_argument("--days", type=int, default=7)
    p.add_argument("--seeds", type=int, nargs="+", default=[42])
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--n", type=int, default=20, help="items per published list")
    p.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    p.add_argument("--prefix", default=os.environ.get("RECSYS_DB_PREFIX", "bench_"))
    return p.parse_args()


class ShuffledPopularityRecommender(MemoryRecommender):
    """The user's category affinity as MemoryRecommender, but the order within a category blends the
    popularity quantile (share ``popularity``) with a fixed random order: a real but smaller loss."""

    def __init__(self, items: pd.DataFrame, events: pd.DataFrame, popularity: float, seed: int = 0) -> None:
        super().__init__(items, events)
        noise = np.random.default_rng(seed).random(len(self.item_id))
        shuffled = pd.Series(noise).groupby(self.cat).rank(pct=True).to_numpy()
        self.pop_q = popularity * self.pop_q + (1 - popularity) * shuffled
        self.name = "bench_shuffled"


def _taste_blind(items: pd.DataFrame, events: pd.DataFrame) -> MemoryRecommender:
    rec = MemoryRecommender(items, events, affinity=0.0)
    rec.name = "bench_popular"
    return rec


#: case → (champion, challenger) factories of (items, events); the challenger is the taste-aware
#: recommender everywhere, the champion weaker by a lot (ab), less (ab_close), little (ab_small) or not (aa)
CASES: dict[str, tuple] = {
    "ab": (_taste_blind, MemoryRecommender),
    "ab_close": (lambda i, e: ShuffledPopularityRecommender(i, e, 0.0), MemoryRecommender),
    "ab_small": (lambda i, e: ShuffledPopularityRecommender(i, e, 0.5), MemoryRecommender),
    "aa": (MemoryRecommender, MemoryRecommender),
}
EXPECTED = {"aa": "no detectable difference"}  # every other case: "challenger better"


def recommenders(case: str, items: pd.DataFrame, events: pd.DataFrame):
    """(champion, challenger) of ``case`` over the events so far."""
    champion, challenger = CASES[case]
    return champion(items, events), challenger(items, events)


def expected_ctr(shop, rec, users: np.ndarray, shown: int) -> float:
    """CTR@shown the reactive users would have if ``rec`` served all of ``users`` (mean click chance)."""
    lists = rec.recommend(list(users), shown)
    u = shop._user_index(lists["user_id"].to_numpy())
    i = shop._item_index(lists["item_id"].to_numpy())
    return float(shop.click_probability(u, i, lists["rank"].to_numpy()).mean())


def serve_round(s, visitors: np.ndarray, at: pd.DatetimeIndex, shown: int) -> tuple[pd.DataFrame, dict]:
    """Each visitor asks the reader for their list at their visit time. Returns (user_id, rank,
    item_id, arm) as served and the impression logger's counts (all written once the app closes)."""
    from fastapi.testclient import TestClient

    import ml.serving.impressions as impressions_module
    from ml.serving.app import create_app

    clock = {"t": None}
    rows = []
    app = create_app(s, warm=False)
    with mock.patch.object(impressions_module, "now_utc", lambda: clock["t"]), TestClient(app) as c:
        for user, t in zip(visitors.tolist(), at):
            clock["t"] = t.to_pydatetime()
            r = c.get(f"/recommendations/{user}", params={"n": shown})
            r.raise_for_status()
            arm = r.headers.get("X-Recsys-Arm")
            rows += [(user, k, it["item_id"], arm) for k, it in enumerate(r.json()["items"], start=1)]
    stats = app.state.impressions.stats()  # after the lifespan's close: every queued row written
    return pd.DataFrame(rows, columns=["user_id", "rank", "item_id", "arm"]), stats


def build_marts(prefix: str) -> float:
    t = time.perf_counter()
    env = {**os.environ, "RECSYS_DB_PREFIX": prefix}
    cmd = [
        str(ROOT / "scripts/dbt.sh"),
        "build",
        "--select",
        "+fct_served_outcomes",
        "--indirect-selection",
        "cautious",
        "--quiet",
    ]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(
            f"dbt build failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-2000:]}"
        )
    return time.perf_counter() - t


def run_case(a: argparse.Namespace, case: str, seed: int) -> dict:
    prefix = f"{a.prefix}absim_{case}_"
    os.environ["RECSYS_DB_PREFIX"] = prefix
    from ml.config import get_settings
    from ml.data.sim_config import SimConfig
    from ml.data.sim_load import load_simulation
    from ml.data.sim_react import ReactiveShop, load_reactions
    from ml.data.simulate import simulate
    from ml.db import drop_databases, init_db
    from ml.models.ab_outcomes import ab_report
    from ml.publish.ab import ChallengerLists
    from ml.publish.full import publish_full
    from ml.publish.refresh import publish_refresh

    t0 = time.perf_counter()
    salt = f"sim-{case}-{seed}"
    s = replace(get_settings(), ab_share=SHARE, ab_salt=salt)
    wall = pd.Timestamp.now(tz="UTC").tz_localize(None)
    cfg = SimConfig(
        users=a.users,
        items=a.items,
        days=a.days,
        seed=seed,
        start=(wall.floor("D") - pd.Timedelta(days=a.days)).to_pydatetime(),  # history ends today 00:00
    )
    data = simulate(cfg)
    drop_databases(s, force=True)
    init_db(s, purpose="test")
    load_simulation(data, s)
    items, events = data.items, data.events
    shop = ReactiveShop(cfg, data=data)
    population = data.users["user_id"].to_numpy(dtype=np.int64)
    shown = shop.params.shown
    versions = ("champion-v1", "challenger-v1" if case != "aa" else "champion-v1-aa")
    truth = dict(
        zip(versions, (expected_ctr(shop, r, population, shown) for r in recommenders(case, items, events)))
    )

    def publish(full: bool) -> None:
        stand_in_marts(s, items, events, a.n)
        champion, challenger = recommenders(case, items, events)
        lists = ChallengerLists(challenger, versions[1])
        if full:
            publish_full(champion, versions[0], s, n=a.n, settle_seconds=0, challenger=lists)
        else:
            publish_refresh(champion, versions[0], s, n=a.n, settle_seconds=0, challenger=lists)

    publish(True)
    # the simulated clock starts after the run's started_at (the publisher's wall clock)
    start = pd.Timestamp.now(tz="UTC").tz_localize(None).ceil("min") + pd.Timedelta(minutes=1)
    served_rows, logged, reacted_shows, arms_seen = 0, {"written": 0, "dropped": 0, "failed": 0}, 0, set()
    for r in range(a.rounds):
        day = start + pd.Timedelta(days=r)
        visitors, offset = shop.visits(population, r)
        at = day + pd.to_timedelta(np.round(offset * 1000), unit="ms")
        lists, stats = serve_round(s, visitors, at, shown)
        imps, new = shop.react(lists, day.to_pydatetime(), r, users=population)
        # the reader logged the impressions; the shop's own copy of them is not loaded twice
        load_reactions(imps.iloc[:0], new, s, now=(day + pd.Timedelta(days=2)).to_pydatetime())
        events = pd.concat([events, new], ignore_index=True)
        served_rows += len(lists)
        reacted_shows += len(imps)
        arms_seen |= set(lists["arm"].dropna())
        for k in logged:
            logged[k] += stats[k]
        publish(r == a.rounds // 2 - 1)
    sim_s = time.perf_counter() - t0
    dbt_s = build_marts(prefix)
    out = {
        "case": case,
        "seed": seed,
        "salt": salt,
        "users": a.users,
        "rounds": a.rounds,
        "expected_ctr_if_serving_everyone": {k: round(v, 5) for k, v in truth.items()},
        "served_rows": served_rows,
        "reacted_shows": reacted_shows,
        "impressions_logged": logged,
        "arms_served": sorted(arms_seen),
        "simulate_publish_serve_s": round(sim_s, 1),
        "dbt_build_s": round(dbt_s, 1),
    }
    for metric in ("ctr", "purchase"):
        rep = ab_report(s, name=salt, metric=metric)
        res = rep.result
        out[metric] = {
            "verdict": res.verdict,
            "champion": {
                "users": res.champion.users,
                "impressions": res.champion.impressions,
                "rate": res.champion.rate,
            },
            "challenger": {
                "users": res.challenger.users,
                "impressions": res.challenger.impressions,
                "rate": res.challenger.rate,
            },
            "diff": res.diff,
            "ci95": [res.ci_low, res.ci_high],
            "relative_lift": res.relative_lift,
            "p_value": res.p_value,
            "srm_p": res.srm_p,
            "misassigned_users": rep.misassigned_users,
            # smallest relative lift this run would detect with 80% power (two-sided, alpha 0.05)
            "mde80_relative": (1.96 + 0.8416) * (res.ci_high - res.ci_low) / (2 * 1.96) / res.champion.rate
            if res.champion.rate > 0
            else None,
        }
    return out


def main() -> None:
    a = _args()
    t0 = time.perf_counter()
    results = []
    for seed in a.seeds:
        for case in a.cases:
            res = run_case(a, case, seed)
            results.append(res)
            print(
                f"seed {seed} {case}: {res['ctr']['verdict']} (diff {res['ctr']['diff']:+.4f}, "
                f"CI {res['ctr']['ci95'][0]:+.4f}..{res['ctr']['ci95'][1]:+.4f}) at {time.perf_counter() - t0:.0f}s",
                file=sys.stderr,
            )
    summary = {
        case: {
            "runs": sum(r["case"] == case for r in results),
            "expected_relative_diff": [
                round(e["challenger-v1"] / e["champion-v1"] - 1, 3) if "challenger-v1" in e else 0.0
                for e in (r["expected_ctr_if_serving_everyone"] for r in results if r["case"] == case)
            ],
            "reported_relative_lift": [
                round(r["ctr"]["relative_lift"], 3) for r in results if r["case"] == case
            ],
            "mde80_relative": [
                round(r["ctr"]["mde80_relative"] or 0, 3) for r in results if r["case"] == case
            ],
            "as_expected_ctr": sum(
                r["case"] == case and r["ctr"]["verdict"] == EXPECTED.get(case, "challenger better")
                for r in results
            ),
        }
        for case in a.cases
    }
    print(
        json.dumps(
            {"summary": summary, "runs": results, "total_s": round(time.perf_counter() - t0, 1)}, indent=1
        )
    )


if __name__ == "__main__":
    main()
