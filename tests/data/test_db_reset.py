"""`recsys db reset` (what `make demo` runs first) drops only databases the project created for a
demo or tests: a marked database is reset, an unmarked one holding data under the same name is
refused with one line and exit code 2 and left intact; a reset also forgets the quality gates'
watermarks of the dropped databases. Runs in its own databases (RECSYS_DB_PREFIX + ``rst_``)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from publish_support import scalar as _scalar
from quality_support import execute as _execute

from ml.db import ResetRefused, drop_databases, init_db

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def other(settings):
    """Settings for databases of this test file only, dropped before and after."""
    prefix = os.environ["RECSYS_DB_PREFIX"] + "rst_"
    s = dataclasses.replace(
        settings,
        raw_db=prefix + settings.raw_db.removeprefix(os.environ["RECSYS_DB_PREFIX"]),
        marts_db=prefix + settings.marts_db.removeprefix(os.environ["RECSYS_DB_PREFIX"]),
        serving_db=prefix + settings.serving_db.removeprefix(os.environ["RECSYS_DB_PREFIX"]),
    )
    drop_databases(s, force=True)
    yield s, prefix
    drop_databases(s, force=True)


def _reset(prefix: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, RECSYS_DB_PREFIX=prefix, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "ml.cli.app", "db", "reset", "--yes"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )


def test_a_marked_demo_database_is_reset(other):
    s, prefix = other
    assert init_db(s, purpose="demo")
    _execute(s, f"INSERT INTO `{s.raw_db}`.users (user_id) VALUES (7)")
    out = _reset(prefix)
    assert out.returncode == 0, out.stderr
    assert _scalar(s, f"SELECT COUNT(*) FROM `{s.raw_db}`.users") == 0
    marks = _scalar(s, f"SELECT GROUP_CONCAT(DISTINCT purpose) FROM `{s.raw_db}`.recsys_marker")
    assert marks == "demo"  # re-created for the demo: the next reset may drop it again
    assert _reset(prefix).returncode == 0


def test_an_unmarked_database_holding_data_is_refused_and_left_intact(other):
    s, prefix = other
    _execute(
        s,
        f"CREATE DATABASE `{s.raw_db}`",
        f"CREATE TABLE `{s.raw_db}`.users (user_id BIGINT PRIMARY KEY, name VARCHAR(20))",
        f"INSERT INTO `{s.raw_db}`.users VALUES (1, 'a real customer')",
        f"CREATE DATABASE `{s.serving_db}`",  # an empty one could go, but nothing is dropped
    )
    out = _reset(prefix)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    message = out.stderr.strip()
    assert (
        f"refusing to drop databases on {s.mysql_host}:{s.mysql_port}: {s.raw_db} holds data (users)"
        in message
    )
    assert "RECSYS_DB_PREFIX" in message
    assert _scalar(s, f"SELECT name FROM `{s.raw_db}`.users WHERE user_id = 1") == "a real customer"
    assert (
        _scalar(s, f"SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = '{s.serving_db}'")
        == 1
    )
    assert (
        _scalar(s, f"SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = '{s.raw_db}'") == 1
    )


def test_deployment_databases_are_refused_and_empty_unmarked_ones_dropped(other):
    s, _ = other
    init_db(s, purpose="deployment")  # `recsys db init` and imports create these
    _execute(s, f"INSERT INTO `{s.raw_db}`.users (user_id) VALUES (7)")
    with pytest.raises(ResetRefused, match=rf"{s.raw_db} holds data \(users\) and is marked 'deployment'"):
        drop_databases(s)
    assert _scalar(s, f"SELECT COUNT(*) FROM `{s.raw_db}`.users") == 1
    drop_databases(s, force=True)
    _execute(s, f"CREATE DATABASE `{s.raw_db}`", f"CREATE TABLE `{s.raw_db}`.t (x INT)")
    drop_databases(s)  # no rows anywhere: nothing to lose
    assert (
        _scalar(s, f"SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = '{s.raw_db}'") == 0
    )


def test_reset_forgets_the_gates_watermarks_of_the_dropped_databases(other):
    s, prefix = other
    init_db(s, purpose="demo")
    state_path = s.home / "gx" / "state.json"
    state_path.parent.mkdir(parents=True, exist_ok=True)
    before = json.loads(state_path.read_text()) if state_path.exists() else {}
    state_path.write_text(
        json.dumps(
            {
                **before,
                s.raw_db: {"raw_watermark": 123456},
                s.marts_db: {"row_counts": {"x": 5}},
                "someone_elses_raw": {"raw_watermark": 9},
            }
        )
    )
    out = _reset(prefix)
    assert out.returncode == 0, out.stderr
    after = json.loads(state_path.read_text())
    assert s.raw_db not in after and s.marts_db not in after
    assert after["someone_elses_raw"] == {"raw_watermark": 9}
