"""ml.features.dbt without a database: argument checks, the environment handed to dbt, failure messages."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ml.config import get_settings
from ml.features.dbt import DbtError, dbt_env, format_cut, pit_database, run_dbt


def test_format_cut_accepts_datetimes_and_iso_strings():
    assert format_cut(datetime(2026, 10, 5, 7, 30)) == "2026-10-05 07:30:00"
    assert format_cut("2026-10-05") == "2026-10-05 00:00:00"
    assert format_cut("2026-10-05T07:30:15") == "2026-10-05 07:30:15"


@pytest.mark.parametrize("bad", ["yesterday", "2026-13-01", ""])
def test_format_cut_rejects_garbage(bad):
    with pytest.raises(ValueError, match="cut_ts"):
        format_cut(bad)


def test_format_cut_rejects_aware_datetimes():
    with pytest.raises(ValueError, match="naive UTC"):
        format_cut(datetime(2026, 10, 5, tzinfo=UTC))


def test_env_and_pit_database_follow_the_settings_prefix(monkeypatch):
    monkeypatch.setenv("RECSYS_DB_PREFIX", "zz_")
    monkeypatch.setenv("RECSYS_MYSQL_PORT", "3307")
    s = get_settings()
    env = dbt_env(s)
    assert env["RECSYS_DB_PREFIX"] == "zz_" and env["RECSYS_MYSQL_PORT"] == "3307"
    assert env["DBT_PROFILES_DIR"] == str(s.dbt_project_dir)
    assert pit_database(s) == "zz_recsys_pit"


def test_missing_dbt_executable_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("RECSYS_DBT_VENV", str(tmp_path / "no-venv"))
    with pytest.raises(DbtError, match="dbt not found"):
        run_dbt(["parse"])


def test_failure_carries_the_tail_of_dbt_output(monkeypatch, tmp_path):
    monkeypatch.setenv("DBT_TARGET_PATH", str(tmp_path / "target"))
    monkeypatch.setenv("DBT_LOG_PATH", str(tmp_path / "logs"))
    with pytest.raises(DbtError, match=r"(?s)`dbt parse --no-such-flag` failed \(exit 2\):.*no-such-flag"):
        run_dbt(["parse", "--no-such-flag"], warm=False)


@pytest.mark.parametrize("setting", ["0", "1"])
def test_recsys_dbt_warm_picks_the_process_or_the_warm_worker(monkeypatch, tmp_path, setting):
    """Unless a caller says, RECSYS_DBT_WARM decides where run_dbt runs dbt (the test suite sets it)."""
    monkeypatch.setenv("RECSYS_DBT_WARM", setting)
    monkeypatch.setenv("DBT_TARGET_PATH", str(tmp_path / "target"))
    monkeypatch.setenv("DBT_LOG_PATH", str(tmp_path / "logs"))
    where = r"warm dbt worker" if setting == "1" else r"exit 2"
    with pytest.raises(DbtError, match=rf"(?s)`dbt parse --no-such-flag` failed \({where}\):.*no-such-flag"):
        run_dbt(["parse", "--no-such-flag"])


def test_the_warm_worker_reuses_a_parse_across_cuts_only():
    """ml.features.dbt_worker: invocations that differ in the cut share a parse; any other var, the
    databases' prefix or the project folder get their own (the artifact folders do not matter)."""
    import json

    from ml.features.dbt_worker import parse_key

    def key(vars_: dict, **env: str) -> str:
        base = {"RECSYS_DB_PREFIX": "a_", "DBT_TARGET_PATH": "/t1", "PATH": "/bin"}
        return parse_key(["build", "--vars", json.dumps(vars_)], {**base, **env}, "/p")

    cut = {"cut_ts": "2026-01-01 00:00:00", "label_hours": 24}
    assert key(cut) == key({**cut, "cut_ts": "2026-01-02 00:00:00"})
    assert key(cut) == key(cut, DBT_TARGET_PATH="/t2", DBT_LOG_PATH="/l", PATH="/usr/bin")
    assert key(cut) != key({"label_hours": 24})  # no cut: another graph
    for other in ({"session_cuts": True}, {"label_window_users": True}, {"label_hours": 2}):
        assert key(cut) != key({**cut, **other})
    assert key(cut) != key(cut, RECSYS_DB_PREFIX="b_")


def test_the_warm_worker_parses_again_when_a_project_file_changes(tmp_path):
    """A long-lived process whose dbt project is edited gets a new parse (a model, a macro, the
    project file); what dbt writes there itself (target/, logs/, its .user.yml) does not count."""
    import os

    from ml.features.dbt_worker import parse_key

    (tmp_path / "models").mkdir()
    model = tmp_path / "models" / "m.sql"
    model.write_text("select 1 as a")
    (tmp_path / "dbt_project.yml").write_text("name: p")

    def key() -> str:
        return parse_key(["build"], {"RECSYS_DB_PREFIX": "a_"}, str(tmp_path))

    first = key()
    for output in ("target/manifest.json", "logs/dbt.log", "dbt_packages/x/y.sql", ".user.yml"):
        (tmp_path / output).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / output).write_text("written by dbt")
    assert key() == first
    stat = model.stat()
    os.utime(model, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))  # saved again, same text
    assert key() != first
    second = key()
    (tmp_path / "models" / "new.sql").write_text("select 2 as b")
    assert key() != second
