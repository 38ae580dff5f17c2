"""The simulated shop the quality benches share: its command-line options and its set-up (own prefixed
databases, simulate + load unless ``--reuse`` keeps the raw data already there)."""

from __future__ import annotations

import argparse
import os
import time
from datetime import datetime
from typing import Any


def add_shop_args(p: argparse.ArgumentParser, prefix: str) -> None:
    """--users/--items/--days/--seed of the shop, --prefix of its databases, --reuse."""
    p.add_argument("--users", type=int, default=2000)
    p.add_argument("--items", type=int, default=1000)
    p.add_argument("--days", type=int, default=14)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument(
        "--prefix",
        default=os.environ.get("RECSYS_DB_PREFIX", prefix),
        help="RECSYS_DB_PREFIX for the benchmark databases",
    )
    p.add_argument(
        "--reuse", action="store_true", help="keep the raw data already in the prefix (skip simulating)"
    )


def prepare_shop(a: argparse.Namespace, experiment: str) -> Any:
    """Point the process at the bench's prefix and MLflow experiment, migrate, simulate and load the shop
    (unless --reuse); returns the Settings."""
    os.environ["RECSYS_DB_PREFIX"] = a.prefix
    os.environ.setdefault("RECSYS_MLFLOW_EXPERIMENT", experiment)
    from ml.config import get_settings
    from ml.data.sim_config import SimConfig
    from ml.data.sim_load import load_simulation
    from ml.data.simulate import simulate
    from ml.db import init_db

    s = get_settings()
    init_db(s)
    if not a.reuse:
        t0 = time.perf_counter()
        data = simulate(
            SimConfig(users=a.users, items=a.items, days=a.days, seed=a.seed, start=datetime(2026, 10, 1))
        )
        load_simulation(data, s)
        print(f"simulated {len(data.events):,} events in {time.perf_counter() - t0:.1f}s")
    return s
