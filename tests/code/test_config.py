from ml.config import get_settings


def test_defaults_and_prefix(monkeypatch):
    for k in ("RECSYS_MYSQL_HOST", "RECSYS_MYSQL_PORT", "MLFLOW_TRACKING_URI", "RECSYS_HOME"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("RECSYS_DB_PREFIX", "x_")
    s = get_settings()
    assert (s.mysql_host, s.mysql_port) == ("127.0.0.1", 3306)
    assert s.databases == {"raw": "x_recsys_raw", "marts": "x_recsys_marts", "serving": "x_recsys_serving"}
    assert s.mlflow_tracking_uri.startswith("sqlite:///") and s.mlflow_tracking_uri.endswith("mlflow.db")
    assert s.home.name == ".local"


def test_env_overrides_are_read_at_call_time(monkeypatch):
    monkeypatch.setenv("RECSYS_MYSQL_PORT", "3310")
    monkeypatch.setenv("RECSYS_MYSQL_PASSWORD", "p@ss word")
    s = get_settings()
    assert s.mysql_port == 3310
    assert "p%40ss+word" in s.sqlalchemy_url("db") and "p@ss word" not in repr(s)


def test_bad_integer_names_the_problem(monkeypatch):
    monkeypatch.setenv("RECSYS_MYSQL_PORT", "33o6")
    import pytest

    with pytest.raises(ValueError, match="RECSYS_"):
        get_settings()
