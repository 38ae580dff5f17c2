"""Benchmark (not a test): the whole training chain against the shop's size — seconds and peak memory
per stage, and the fitted cost curve.

For each size: simulate a shop of about that many events (:func:`dbt_scale.sim_config`: two weeks,
users and items scaled with the events), drop and recreate ``{prefix}`` databases, load it, then run
the chain as the train DAG does, each stage timed: ``dbt build --full-refresh`` of the marts (batch +
realtime, their tests), the GX ``raw`` and ``marts`` gates, ``train_pipeline`` (point-in-time builds
per cut, candidates, rerankers, baselines, evaluation, MLflow, gate; its own per-stage clock is
reported too) and the champion's full publish (scoring every active user, GX top-N check, swap).
Peak memory: the largest resident set of this process plus its children (dbt) during the stage,
sampled every 0.2 s (MariaDB's own memory is not in it).

The cost of each stage is fitted as ``seconds = a · events^b`` over the sizes run (log-log least
squares); with ``--budget-s`` a size whose predicted whole-chain time exceeds the budget is skipped
and the prediction printed instead (how 10M events is "run with a time budget" on a small box).
One JSON line per size, then the fit (exponent per stage, ratio of the two largest sizes and the
predicted 10M/1M ratio), to stdout and bench/out/scale.jsonl.

    RECSYS_DB_PREFIX=bench_scale_ nice -n 10 .venv/bin/python bench/scale.py --events 100000 1000000 10000000 --budget-s 3600

Uses (and drops first) only the databases of RECSYS_DB_PREFIX, which must be set and non-empty, and
a fresh RECSYS_HOME (MLflow store, GX state) per size under a temporary folder.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dbt_scale import sim_config  # noqa: E402

STAGES = ("simulate", "load", "dbt_build", "gx_raw", "gx_marts", "train", "publish")


class PeakRSS:
    """Largest RSS of this process and its children (MiB) while the context is open."""

    def __init__(self, every_s: float = 0.2) -> None:
        self.every_s, self.peak_mib = every_s, 0.0
        self._stop = threading.Event()

    def _sample(self) -> float:
        me = psutil.Process()
        total = me.memory_info().rss
        for child in me.children(recursive=True):
            with contextlib.suppress(psutil.Error):  # a child that just exited
                total += child.memory_info().rss
        return total / 2**20

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_mib = max(self.peak_mib, self._sample())
            self._stop.wait(self.every_s)

    def __enter__(self) -> PeakRSS:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_mib = max(self.peak_mib, self._sample())


class Clock:
    """Seconds and peak memory per stage of one size."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.peak_mib: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str):
        t0 = time.perf_counter()
        with PeakRSS() as mem:
            yield
        self.seconds[name] = round(time.perf_counter() - t0, 1)
        self.peak_mib[name] = round(mem.peak_mib)
        print(
            f"  {name}: {self.seconds[name]} s, peak {self.peak_mib[name]} MiB", file=sys.stderr, flush=True
        )


def run_size(n_events: int, settings, args) -> dict:
    from ml.data.sim_load import load_simulation
    from ml.data.simulate import simulate
    from ml.db import drop_databases, init_db
    from ml.features.dbt import run_dbt
    from ml.publish.run import publish_champion_full
    from ml.quality.gates import require_stage
    from ml.training.config import TrainConfig
    from ml.training.pipeline import train_pipeline

    cfg = sim_config(n_events)
    clock = Clock()
    print(f"{n_events:,} events: {cfg.users:,} users, {cfg.items:,} items", file=sys.stderr, flush=True)
    with clock.stage("simulate"):
        data = simulate(cfg)
    with clock.stage("load"):
        drop_databases(settings)
        init_db(settings)
        load_simulation(data, settings)
    with clock.stage("dbt_build"):
        run_dbt(["build", "--full-refresh", "--exclude", "tag:pit"], settings=settings)
    with clock.stage("gx_raw"):
        require_stage("raw", settings)
    with clock.stage("gx_marts"):
        require_stage("marts", settings)
    train_cfg = TrainConfig(use_tf=args.tf, xgboost=args.xgboost, margin=0.0)
    with clock.stage("train"):
        out = train_pipeline(settings, train_cfg)
    with clock.stage("publish"):
        published = publish_champion_full(settings)
    return {
        "events": int(len(data.events)),
        "users": cfg.users,
        "items": cfg.items,
        "seconds": clock.seconds,
        "total_s": round(sum(clock.seconds.values()), 1),
        "peak_mib": clock.peak_mib,
        "train_stage_seconds": _summed(out["stage_seconds"]),
        "lightgbm_ndcg_at_10": out["metrics"]["lightgbm"]["ndcg@10"],
        "session_lightgbm_ndcg_at_10": (out["session"] or {})
        .get("metrics", {})
        .get("lightgbm", {})
        .get("ndcg@10"),
        "eval_users": out["eval_users"],
        "published_users": published.get("users"),
    }


def _summed(stages: list[tuple[str, float]]) -> dict[str, float]:
    """train_pipeline's (stage, seconds) list by name (a name may repeat: the same baseline per task)."""
    out: dict[str, float] = {}
    for name, sec in stages:
        out[name] = round(out.get(name, 0.0) + sec, 2)
    return out


def fit_curve(rows: list[dict]) -> dict:
    """``seconds = a · events^b`` per stage and for the total, over the sizes measured."""
    if len(rows) < 2:
        return {}
    x = [math.log(r["events"]) for r in rows]

    def exponent(ys: list[float]) -> tuple[float, float]:
        ly = [math.log(max(y, 0.05)) for y in ys]
        mx, my = sum(x) / len(x), sum(ly) / len(ly)
        b = sum((a - mx) * (c - my) for a, c in zip(x, ly)) / sum((a - mx) ** 2 for a in x)
        return b, math.exp(my - b * mx)

    out: dict = {"exponent": {}}
    for stage in (*STAGES, "total"):
        ys = [r["total_s"] if stage == "total" else r["seconds"][stage] for r in rows]
        b, a = exponent(ys)
        out["exponent"][stage] = round(b, 2)
        if stage == "total":
            out["total_a"], out["total_b"] = a, b
    out["predicted_10m_over_1m"] = round(10 ** out["total_b"], 2)
    big, prev = rows[-1], rows[-2]
    out["measured_ratio"] = {
        "sizes": [prev["events"], big["events"]],
        "total": round(big["total_s"] / prev["total_s"], 2),
    }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument(
        "--budget-s", type=float, default=0.0, help="skip a size predicted to exceed this (0: none)"
    )
    parser.add_argument("--tf", action="store_true", help="train the TF ranker too (slow on CPU)")
    parser.add_argument("--xgboost", action="store_true", help="also fit the XGBoost reranker")
    args = parser.parse_args()
    if not os.environ.get("RECSYS_DB_PREFIX"):
        raise SystemExit("set RECSYS_DB_PREFIX (the benchmark drops and recreates that prefix's databases)")
    os.environ.setdefault("RECSYS_MLFLOW_EXPERIMENT", "bench-scale")
    from ml.config import get_settings

    out_dir = Path(__file__).resolve().parent / "out"
    out_dir.mkdir(exist_ok=True)
    rows: list[dict] = []
    with open(out_dir / "scale.jsonl", "a", encoding="utf-8") as sink:
        for n in sorted(args.events):
            fit = fit_curve(rows)
            if args.budget_s and fit:
                predicted = fit["total_a"] * n ** fit["total_b"]
                if predicted > args.budget_s:
                    line = {
                        "events": n,
                        "skipped": f"predicted {predicted:.0f} s > budget {args.budget_s:.0f} s",
                    }
                    print(json.dumps(line), flush=True)
                    sink.write(json.dumps(line) + "\n")
                    continue
            # a fresh RECSYS_HOME per size: the GX marts gate compares row counts with the previous
            # successful run (a shop 10x larger is an anomaly there) and MLflow starts without a champion
            os.environ["RECSYS_HOME"] = tempfile.mkdtemp(prefix="bench_scale_")
            row = run_size(n, get_settings(), args)
            rows.append(row)
            print(json.dumps(row), flush=True)
            sink.write(json.dumps(row) + "\n")
        fit = fit_curve(rows)
        if fit:
            fit = {k: v for k, v in fit.items() if k not in ("total_a", "total_b")}
            print(json.dumps({"fit": fit}), flush=True)
            sink.write(json.dumps({"fit": fit}) + "\n")


if __name__ == "__main__":
    main()
