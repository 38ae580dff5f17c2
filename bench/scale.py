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
squares). ``--budget-s`` is how 10M events is "run with a time budget" on a small box: a size runs
its stages in order as long as each next stage's predicted seconds (fitted from the smaller sizes of
this invocation, and of an earlier run's file with ``--fit-from``) fit in what is left of the budget, and the training stage also only when its
predicted peak memory fits in the memory available; the first stage that does not fit is reported
with its prediction and the reason, and it and every later stage (each needs the one before) are not
run. The measured stages of a partial size are real measurements; it takes no part in the fit.
One JSON line per size, then the fit (exponent per stage, ratio of the two largest complete sizes
and the predicted 10M/1M ratio), to stdout and bench/out/scale.jsonl.

    RECSYS_DB_PREFIX=bench_scale_ nice -n 10 .venv/bin/python bench/scale.py --events 100000 1000000 10000000 --budget-s 1800

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


class StageBudget(Exception):
    """A stage of this size does not fit the budget (raised before it starts)."""


class Budget:
    """What is left of ``--budget-s`` for one size, against the stages' costs fitted on smaller sizes."""

    def __init__(self, seconds: float, n_events: int, fit: dict) -> None:
        self.seconds, self.n_events, self.fit = seconds, n_events, fit
        self.t0 = time.perf_counter()

    def check(self, stage: str) -> None:
        """Raise :class:`StageBudget` when ``stage``'s predicted seconds exceed what is left, or (train)
        its predicted peak memory exceeds the memory available now."""
        if not self.seconds or not self.fit:
            return
        left = self.seconds - (time.perf_counter() - self.t0)
        a, b = self.fit["stage_ab"][stage]
        predicted = a * self.n_events**b
        if predicted > left:
            raise StageBudget(
                {"stage": stage, "predicted_s": round(predicted), "left_s": round(left), "why": "time budget"}
            )
        if stage in self.fit.get("peak_ab", {}):
            a, b = self.fit["peak_ab"][stage]
            need = a * self.n_events**b
            free = psutil.virtual_memory().available / 2**20
            if need > free:
                raise StageBudget(
                    {
                        "stage": stage,
                        "predicted_peak_mib": round(need),
                        "available_mib": round(free),
                        "why": "memory",
                    }
                )


class Clock:
    """Seconds and peak memory per stage of one size."""

    def __init__(self, budget: Budget | None = None) -> None:
        self.seconds: dict[str, float] = {}
        self.peak_mib: dict[str, float] = {}
        self.budget = budget
        self.events: int | None = None  # simulated events, once known

    @contextmanager
    def stage(self, name: str):
        if self.budget is not None:
            self.budget.check(name)
        t0 = time.perf_counter()
        with PeakRSS() as mem:
            yield
        self.seconds[name] = round(time.perf_counter() - t0, 1)
        self.peak_mib[name] = round(mem.peak_mib)
        print(
            f"  {name}: {self.seconds[name]} s, peak {self.peak_mib[name]} MiB", file=sys.stderr, flush=True
        )


def run_size(n_events: int, settings, args, budget: Budget | None = None) -> dict:
    """One size's chain; a stage that does not fit ``budget`` ends it early (``stopped`` says why)."""
    clock = Clock(budget)
    try:
        row = _chain(n_events, settings, args, clock)
    except StageBudget as stop:
        cfg = sim_config(n_events)
        row = {
            "events": clock.events or n_events,
            "users": cfg.users,
            "items": cfg.items,
            "stopped": stop.args[0],
        }
        print(f"  stopped before {stop.args[0]}", file=sys.stderr, flush=True)
    row["seconds"], row["peak_mib"] = clock.seconds, clock.peak_mib
    row["total_s"] = round(sum(clock.seconds.values()), 1)
    return row


def _chain(n_events: int, settings, args, clock: Clock) -> dict:
    from ml.data.sim_load import load_simulation
    from ml.data.simulate import simulate
    from ml.db import drop_databases, init_db
    from ml.features.dbt import run_dbt
    from ml.publish.run import publish_champion_full
    from ml.quality.gates import require_stage
    from ml.training.config import TrainConfig
    from ml.training.pipeline import train_pipeline

    cfg = sim_config(n_events)
    print(f"{n_events:,} events: {cfg.users:,} users, {cfg.items:,} items", file=sys.stderr, flush=True)
    with clock.stage("simulate"):
        data = simulate(cfg)
    clock.events = int(len(data.events))
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
        "train_stage_seconds": _summed(out["stage_seconds"]),
        # the jobs run beside the cut builds (features, search rows): not in the stage table
        "train_beside_builds_seconds": out.get("beside_builds_seconds"),
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
    """``seconds = a · events^b`` per stage and for the total over the complete sizes measured, and
    the training stage's peak memory the same way (``stage_ab`` / ``peak_ab``: the (a, b) pairs)."""
    rows = [r for r in rows if "stopped" not in r]
    if len(rows) < 2:
        return {}
    x = [math.log(r["events"]) for r in rows]

    def exponent(ys: list[float]) -> tuple[float, float]:
        ly = [math.log(max(y, 0.05)) for y in ys]
        mx, my = sum(x) / len(x), sum(ly) / len(ly)
        b = sum((a - mx) * (c - my) for a, c in zip(x, ly)) / sum((a - mx) ** 2 for a in x)
        return b, math.exp(my - b * mx)

    out: dict = {"exponent": {}, "stage_ab": {}}
    for stage in (*STAGES, "total"):
        ys = [r["total_s"] if stage == "total" else r["seconds"][stage] for r in rows]
        b, a = exponent(ys)
        out["exponent"][stage] = round(b, 2)
        out["stage_ab"][stage] = (a, b)
    b, a = exponent([r["peak_mib"]["train"] for r in rows])
    out["peak_ab"] = {"train": (a, b)}
    out["predicted_10m_over_1m"] = round(10 ** out["stage_ab"]["total"][1], 2)
    big, prev = rows[-1], rows[-2]
    out["measured_ratio"] = {
        "sizes": [prev["events"], big["events"]],
        "total": round(big["total_s"] / prev["total_s"], 2),
    }
    return out


def earlier_rows(path: Path) -> list[dict]:
    """The complete sizes of an earlier run's JSON lines (the last one per size), smallest first."""
    by_size: dict[int, dict] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if "seconds" in row and "stopped" not in row and "train" in row["seconds"]:
            by_size[row["events"]] = row
    return [by_size[n] for n in sorted(by_size)]


def partial_ratios(rows: list[dict]) -> list[dict]:
    """Per stage it ran, each partial size's seconds over the largest complete smaller size's."""
    out = []
    for row in rows:
        if "stopped" not in row:
            continue
        base = [r for r in rows if "stopped" not in r and r["events"] < row["events"]]
        if not base or not row["seconds"]:
            continue
        ref = max(base, key=lambda r: r["events"])
        ratio = {k: round(v / max(ref["seconds"][k], 0.05), 2) for k, v in row["seconds"].items()}
        out.append({"sizes": [ref["events"], row["events"]], "stage_ratio": ratio, "stopped": row["stopped"]})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument(
        "--budget-s",
        type=float,
        default=0.0,
        help="seconds per size: stop a size before a stage predicted not to fit (0: no budget)",
    )
    parser.add_argument(
        "--fit-from",
        type=Path,
        help="also fit on the complete sizes of an earlier scale.jsonl (same box and code: a 10M run alone)",
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
    rows: list[dict] = earlier_rows(args.fit_from) if args.fit_from else []
    with open(out_dir / "scale.jsonl", "a", encoding="utf-8") as sink:
        for n in sorted(args.events):
            budget = Budget(args.budget_s, n, fit_curve(rows)) if args.budget_s else None
            # a fresh RECSYS_HOME per size: the GX marts gate compares row counts with the previous
            # successful run (a shop 10x larger is an anomaly there) and MLflow starts without a champion
            os.environ["RECSYS_HOME"] = tempfile.mkdtemp(prefix="bench_scale_")
            row = run_size(n, get_settings(), args, budget)
            rows.append(row)
            print(json.dumps(row), flush=True)
            sink.write(json.dumps(row) + "\n")
            sink.flush()  # a run stopped by hand keeps the sizes it finished
        fit = fit_curve(rows)
        if fit:
            fit = {k: v for k, v in fit.items() if k not in ("stage_ab", "peak_ab")}
            fit["partial"] = partial_ratios(rows)
            print(json.dumps({"fit": fit}), flush=True)
            sink.write(json.dumps({"fit": fit}) + "\n")


if __name__ == "__main__":
    main()
