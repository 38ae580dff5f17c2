"""Settings read from the environment, with local defaults (the "embedded" mode).

Nothing here runs at import time: call :func:`get_settings` where a value is needed, so tests and
Airflow tasks can change the environment between calls.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

#: Repository root (the folder that holds ``ml/``, ``dbt_project/``, ``dags/``).
PROJECT_ROOT = Path(__file__).resolve().parent.parent

#: Every environment variable the code reads, with its default. The docker-compose test checks
#: that the compose file sets each of them for the services that run the code.
ENV_DEFAULTS: dict[str, str] = {
    "RECSYS_MYSQL_HOST": "127.0.0.1",
    "RECSYS_MYSQL_PORT": "3306",
    "RECSYS_MYSQL_USER": "root",
    "RECSYS_MYSQL_PASSWORD": "",
    "RECSYS_DB_PREFIX": "",
    "RECSYS_RAW_DB": "recsys_raw",
    "RECSYS_MARTS_DB": "recsys_marts",
    "RECSYS_SERVING_DB": "recsys_serving",
    "RECSYS_READER_USER": "recsys_reader",
    "RECSYS_READER_PASSWORD": "recsys_reader",
    # issue 17: the reader records what it served (1) into raw.impressions with this INSERT-only account
    "RECSYS_IMPRESSIONS": "1",
    "RECSYS_IMPRESSIONS_USER": "recsys_impressions",
    "RECSYS_IMPRESSIONS_PASSWORD": "recsys_impressions",
    "RECSYS_HOME": str(PROJECT_ROOT / ".local"),
    "RECSYS_DBT_VENV": str(PROJECT_ROOT / ".venv-dbt"),
    # 1: every dbt invocation of a process goes through its one warm dbt worker (ml/features/dbt_warm.py)
    "RECSYS_DBT_WARM": "0",
    "MLFLOW_TRACKING_URI": "",
    "RECSYS_MLFLOW_EXPERIMENT": "recsys",
    "RECSYS_TOPN": "50",
    # search (issue 15): items per published query list; searches a query needs to get a list
    "RECSYS_SEARCH_K": "50",
    "RECSYS_SEARCH_MIN_QUERY_COUNT": "3",
    "RECSYS_REFRESH_MINUTES": "5",
    # RECSYS_REFRESH_MINUTES=0 (back to back): seconds the refresh guard waits for an event before it skips
    "RECSYS_REFRESH_IDLE_SECONDS": "60",
    "RECSYS_TF_FORCE_CPU": "0",
    "RECSYS_TF_THREADS": "2",
    "RECSYS_API_KEYS": "",
    "RECSYS_API_DOCS": "0",
    # keyed hash of `recsys data import --pseudonymize` (ml/data/pseudonym.py); empty = not configured
    "RECSYS_PSEUDONYM_KEY": "",
    # issue 17: demote items shown N times without engagement (N and decay fitted on impressions; 0 = off)
    "RECSYS_FATIGUE": "1",
    # A/B (issue 17): share of users in the challenger arm (0 = no experiment) and the experiment's name,
    # which salts the user split (ml/experiment.py)
    "RECSYS_AB_SHARE": "0",
    "RECSYS_AB_SALT": "",
}


#: What a database or account name from the environment may be: it is written into SQL as an
#: identifier (backquoted, or quoted as ``'user'@'host'``), so nothing that could close the quoting.
NAME_RE = re.compile(r"^[A-Za-z0-9_]{1,64}$")


class SettingsError(ValueError):
    """A value in the environment is unusable; the message names the variable."""


def _env(name: str) -> str:
    return os.environ.get(name, ENV_DEFAULTS[name])


def _flag(name: str) -> bool:
    """An on/off setting: 1, true or yes (any case, spaces ignored) is on."""
    return _env(name).strip().lower() in ("1", "true", "yes")


def _name(value: str, variable: str) -> str:
    """``value`` if it is a safe database/user name, else :class:`SettingsError` naming ``variable``."""
    if not NAME_RE.match(value):
        raise SettingsError(
            f"{variable}={value!r} is not a usable name: use 1-64 letters, digits or underscores "
            f"(pattern {NAME_RE.pattern})"
        )
    return value


@dataclass(frozen=True)
class Settings:
    """Resolved configuration. Database names include ``RECSYS_DB_PREFIX`` (tests use one)."""

    mysql_host: str
    mysql_port: int
    mysql_user: str
    mysql_password: str = field(repr=False)
    raw_db: str
    marts_db: str
    serving_db: str
    reader_user: str
    reader_password: str = field(repr=False)
    home: Path
    dbt_venv: Path
    mlflow_tracking_uri: str
    mlflow_experiment: str
    topn: int
    refresh_minutes: int
    #: run every :func:`ml.features.dbt.run_dbt` of the process in its warm dbt worker (``RECSYS_DBT_WARM``)
    dbt_warm: bool = False
    #: items per published search list (``query_topn``, ``user_query_topn``) and the largest ``/search`` n
    search_k: int = 50
    #: searches (``ml_query_stats.n_searches``) a normalised query needs before it gets a ``query_topn`` list
    search_min_query_count: int = 3
    #: serving reader: accepted ``X-API-Key`` values (empty: no key asked, the local default)
    api_keys: tuple[str, ...] = field(default=(), repr=False)
    #: serving reader: serve ``/docs``, ``/redoc`` and ``/openapi.json`` (off unless asked)
    api_docs: bool = False
    #: serving reader: record every served list in ``{raw_db}.impressions`` (issue 17)
    impressions: bool = True
    #: the account that writes them: INSERT on ``{raw_db}.impressions`` only (migration 0014)
    impressions_user: str = "recsys_impressions"
    impressions_password: str = field(default="recsys_impressions", repr=False)
    #: publisher: demote items shown N times without engagement (ml.models.fatigue; issue 17)
    fatigue: bool = True
    #: A/B (issue 17): share of users in the challenger arm, 0 = no experiment (``RECSYS_AB_SHARE``)
    ab_share: float = 0.0
    #: the experiment's name, which salts the user split (``RECSYS_AB_SALT``)
    ab_salt: str = ""

    @property
    def ab_on(self) -> bool:
        """An A/B experiment is configured: the full publish also builds the challenger's lists."""
        return self.ab_share > 0

    @property
    def dbt_project_dir(self) -> Path:
        return PROJECT_ROOT / "dbt_project"

    @property
    def dbt_executable(self) -> Path:
        return self.dbt_venv / "bin" / "dbt"

    @property
    def airflow_home(self) -> Path:
        return Path(os.environ.get("AIRFLOW_HOME", str(self.home / "airflow")))

    @property
    def databases(self) -> dict[str, str]:
        return {"raw": self.raw_db, "marts": self.marts_db, "serving": self.serving_db}

    def sqlalchemy_url(self, database: str | None = None) -> str:
        """A ``mysql+pymysql://`` URL (used by pandas, MLflow-free readers and GX); without
        ``local_infile``, which only the loader's connections enable (:func:`ml.db.connect`)."""
        from urllib.parse import quote_plus

        auth = quote_plus(self.mysql_user)
        if self.mysql_password:
            auth += ":" + quote_plus(self.mysql_password)
        db = f"/{database}" if database else ""
        return f"mysql+pymysql://{auth}@{self.mysql_host}:{self.mysql_port}{db}"


def get_settings() -> Settings:
    """Read the environment now (cheap; deliberately not cached)."""
    prefix = _env("RECSYS_DB_PREFIX")
    home = Path(_env("RECSYS_HOME"))
    tracking = _env("MLFLOW_TRACKING_URI") or f"sqlite:///{home / 'mlflow' / 'mlflow.db'}"
    try:
        port = int(_env("RECSYS_MYSQL_PORT"))
        topn = int(_env("RECSYS_TOPN"))
        refresh = int(_env("RECSYS_REFRESH_MINUTES"))
        search_k = int(_env("RECSYS_SEARCH_K"))
        search_min = int(_env("RECSYS_SEARCH_MIN_QUERY_COUNT"))
    except ValueError as exc:  # a typo in the environment must say which variable
        raise SettingsError(f"invalid integer in RECSYS_* environment: {exc}") from None
    if not 1 <= search_k <= 1000 or search_min < 1:
        raise SettingsError(
            f"RECSYS_SEARCH_K must be 1..1000 (got {search_k}) and RECSYS_SEARCH_MIN_QUERY_COUNT >= 1 (got {search_min})"
        )
    if prefix:
        _name(prefix, "RECSYS_DB_PREFIX")
    ab_share, ab_salt = _ab_settings()
    dbs = {
        var: _name(prefix + _name(_env(var), var), f"{var} (after RECSYS_DB_PREFIX)")
        for var in ("RECSYS_RAW_DB", "RECSYS_MARTS_DB", "RECSYS_SERVING_DB")
    }
    return Settings(
        mysql_host=_env("RECSYS_MYSQL_HOST"),
        mysql_port=port,
        mysql_user=_name(_env("RECSYS_MYSQL_USER"), "RECSYS_MYSQL_USER"),
        mysql_password=_env("RECSYS_MYSQL_PASSWORD"),
        raw_db=dbs["RECSYS_RAW_DB"],
        marts_db=dbs["RECSYS_MARTS_DB"],
        serving_db=dbs["RECSYS_SERVING_DB"],
        reader_user=_name(_env("RECSYS_READER_USER"), "RECSYS_READER_USER"),
        reader_password=_env("RECSYS_READER_PASSWORD"),
        home=home,
        dbt_venv=Path(_env("RECSYS_DBT_VENV")),
        dbt_warm=_flag("RECSYS_DBT_WARM"),
        mlflow_tracking_uri=tracking,
        mlflow_experiment=_env("RECSYS_MLFLOW_EXPERIMENT"),
        topn=topn,
        refresh_minutes=refresh,
        search_k=search_k,
        search_min_query_count=search_min,
        api_keys=tuple(k.strip() for k in _env("RECSYS_API_KEYS").split(",") if k.strip()),
        api_docs=_flag("RECSYS_API_DOCS"),
        impressions=_flag("RECSYS_IMPRESSIONS"),
        impressions_user=_name(_env("RECSYS_IMPRESSIONS_USER"), "RECSYS_IMPRESSIONS_USER"),
        impressions_password=_env("RECSYS_IMPRESSIONS_PASSWORD"),
        fatigue=_flag("RECSYS_FATIGUE"),
        ab_share=ab_share,
        ab_salt=ab_salt,
    )


def _ab_settings() -> tuple[float, str]:
    """(share, salt) of ``RECSYS_AB_SHARE``/``RECSYS_AB_SALT``: share 0 is off; otherwise 0 < share < 1
    and a name (the salt, stored in ``ab_experiment.name``) is required."""
    try:
        share = float(_env("RECSYS_AB_SHARE") or "0")
    except ValueError:
        raise SettingsError(f"RECSYS_AB_SHARE={_env('RECSYS_AB_SHARE')!r} is not a number") from None
    salt = _env("RECSYS_AB_SALT").strip()
    if share == 0:
        return 0.0, salt
    if not 0 < share < 1:
        raise SettingsError(
            f"RECSYS_AB_SHARE must be 0 (no experiment) or strictly between 0 and 1, got {share}"
        )
    if not salt:
        raise SettingsError(
            "RECSYS_AB_SHARE > 0 needs RECSYS_AB_SALT: the experiment's name, which salts the split"
        )
    return share, _name(salt, "RECSYS_AB_SALT")
