"""MySQL connections and the versioned raw-schema migrations.

Migrations are ``ml/migrations/NNNN_name.sql`` files with ``{raw_db}``, ``{marts_db}``,
``{serving_db}``, ``{reader_user}``, ``{reader_password}``, ``{impressions_user}`` and
``{impressions_password}`` placeholders. Each is applied once,
in order, and recorded in ``{raw_db}.schema_migrations`` with its checksum; every statement is
written to be idempotent as well, so a half-applied migration can simply be re-run.

Reset safety: :func:`init_db` marks each database it creates (or finds without tables) in
``{raw_db}.recsys_marker`` with the purpose it was created for. :func:`drop_databases` drops only
databases that are absent, hold no rows, or are marked ``demo``/``test``, so a reset (``make
demo``) pointed at someone's server never drops data it did not create for a demo.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pymysql
import pymysql.cursors

from ml.config import Settings, get_settings

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_MIGRATION_RE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
# error codes PyMySQL raises when nothing answers (refused, unknown host, timeout)
_UNREACHABLE = {2002, 2003, 2005, 2006, 2013}


class MySQLUnavailable(RuntimeError):
    """MySQL did not answer; the message is one line a person can act on."""


class MigrationError(RuntimeError):
    """A migration file changed after it was applied, or is malformed."""


class ResetRefused(RuntimeError):
    """A database to drop holds data and no demo/test marker; the message says what to do."""


MARKER_TABLE = "recsys_marker"
#: what a database can be created for; a reset drops only the resettable ones (or empty ones)
PURPOSES: tuple[str, ...] = ("demo", "test", "deployment")
RESETTABLE: tuple[str, ...] = ("demo", "test")


def _unreachable_message(s: Settings, exc: Exception) -> str:
    return (
        f"cannot reach MySQL at {s.mysql_host}:{s.mysql_port} as '{s.mysql_user}' ({exc.args[-1] if exc.args else exc}); "
        "start one with `docker compose up -d mysql` or a local server "
        "(`start-stop-daemon --start --background --exec /usr/sbin/mariadbd`), "
        "or point RECSYS_MYSQL_HOST/RECSYS_MYSQL_PORT at yours"
    )


#: seconds a statement of ours waits for a metadata lock (DDL, a table another session holds open in
#: a transaction) before failing with error 1205; the server's default is a year, which turns a
#: forgotten transaction into a run that hangs instead of one that fails with a message
LOCK_WAIT_S = 600


def connect(
    database: str | None = None,
    *,
    settings: Settings | None = None,
    autocommit: bool = True,
    dict_cursor: bool = False,
    connect_timeout: int = 5,
    local_infile: bool = False,
) -> pymysql.connections.Connection:
    """Open a PyMySQL connection (utf8mb4). Raises :class:`MySQLUnavailable`.

    ``local_infile`` lets the server ask this client for any file it can read (``LOAD DATA LOCAL``):
    only the bulk loader's connections (:mod:`ml.data.load`) turn it on, so a rogue or hijacked
    server cannot read files through every other connection."""
    s = settings or get_settings()
    try:
        return pymysql.connect(
            host=s.mysql_host,
            port=s.mysql_port,
            user=s.mysql_user,
            password=s.mysql_password,
            database=database,
            charset="utf8mb4",
            autocommit=autocommit,
            local_infile=local_infile,
            connect_timeout=connect_timeout,
            init_command=f"SET SESSION lock_wait_timeout = {LOCK_WAIT_S}",
            cursorclass=pymysql.cursors.DictCursor if dict_cursor else pymysql.cursors.Cursor,
        )
    except pymysql.err.OperationalError as exc:
        code = exc.args[0] if exc.args else None
        if code in _UNREACHABLE:
            raise MySQLUnavailable(_unreachable_message(s, exc)) from None
        if code == 1045:
            raise MySQLUnavailable(
                f"MySQL at {s.mysql_host}:{s.mysql_port} refused user '{s.mysql_user}': "
                "check RECSYS_MYSQL_USER/RECSYS_MYSQL_PASSWORD"
            ) from None
        raise


@contextlib.contextmanager
def transaction(
    database: str | None = None, *, settings: Settings | None = None, local_infile: bool = False
) -> Iterator[pymysql.connections.Connection]:
    """A connection whose work commits on success and rolls back on any exception
    (``local_infile`` as in :func:`connect`: for the loader only)."""
    conn = connect(database, settings=settings, autocommit=False, local_infile=local_infile)
    try:
        yield conn
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    finally:
        conn.close()


def _quoted(password: str) -> str:
    """``password`` as the body of a quoted literal under the default sql_mode (for the migrations;
    :func:`_ensure_reader` and :func:`_ensure_impressions_writer` re-apply it with bound values)."""
    return password.replace("\\", "\\\\").replace("'", "''")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path

    def render(self, s: Settings) -> str:
        return self.path.read_text().format(
            raw_db=s.raw_db,
            marts_db=s.marts_db,
            serving_db=s.serving_db,
            reader_user=s.reader_user,
            reader_password=_quoted(s.reader_password),
            impressions_user=s.impressions_user,
            impressions_password=_quoted(s.impressions_password),
        )

    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()[:16]


def list_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    found = []
    for p in sorted(directory.glob("*.sql")):
        m = _MIGRATION_RE.match(p.name)
        if not m:
            raise MigrationError(f"migration file {p.name} does not match NNNN_name.sql")
        found.append(Migration(int(m.group(1)), m.group(2), p))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"duplicate migration versions in {directory}")
    return found


def split_statements(sql: str) -> list[str]:
    """Split on ``;`` at line ends; drop ``--`` comment lines. Statements never contain ``;\\n``."""
    lines = [ln for ln in sql.splitlines() if not ln.strip().startswith("--")]
    parts = (st.strip().rstrip(";").strip() for st in "\n".join(lines).split(";\n"))
    return [st for st in parts if st]


def _table_names(cur, db: str) -> list[str]:
    cur.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = %s AND table_type = 'BASE TABLE'",
        (db,),
    )
    return [r[0] for r in cur.fetchall()]


def _database_exists(cur, db: str) -> bool:
    cur.execute("SELECT 1 FROM information_schema.schemata WHERE schema_name = %s", (db,))
    return cur.fetchone() is not None


READER_HOSTS: tuple[str, ...] = ("%", "localhost")


def _ensure_reader(cur, s: Settings) -> None:
    """The read-only serving account (migration 0003) with the current ``RECSYS_READER_PASSWORD``:
    created if absent, its password set and its grant given on every ``db init`` (a changed password
    takes effect; a dropped account comes back). Name and password are bound values, escaped by the
    driver for the server's sql_mode, never pasted into the statement."""
    for host in READER_HOSTS:
        account = (s.reader_user, host)
        cur.execute("CREATE USER IF NOT EXISTS %s@%s IDENTIFIED BY %s", (*account, s.reader_password))
        cur.execute("ALTER USER %s@%s IDENTIFIED BY %s", (*account, s.reader_password))
        cur.execute(f"GRANT SELECT ON `{s.serving_db}`.* TO %s@%s", account)


def _ensure_impressions_writer(cur, s: Settings) -> None:
    """The impressions account (migration 0014) as :func:`_ensure_reader` keeps the reader's: INSERT on
    ``{raw_db}.impressions`` and nothing else, so the serving process can record what it served
    without being able to read or change any other raw table (nor read back the impressions)."""
    for host in READER_HOSTS:
        account = (s.impressions_user, host)
        cur.execute("CREATE USER IF NOT EXISTS %s@%s IDENTIFIED BY %s", (*account, s.impressions_password))
        cur.execute("ALTER USER %s@%s IDENTIFIED BY %s", (*account, s.impressions_password))
        cur.execute(f"GRANT INSERT ON `{s.raw_db}`.impressions TO %s@%s", account)


def init_db(settings: Settings | None = None, *, purpose: str = "demo") -> list[str]:
    """Create the three databases and apply pending migrations. Returns the names applied.
    Databases this call creates (or finds without tables) are marked with ``purpose`` (one of
    :data:`PURPOSES`); existing marks and unmarked databases with tables are left as they are."""
    if purpose not in PURPOSES:
        raise ValueError(f"purpose must be one of {', '.join(PURPOSES)}, got {purpose!r}")
    s = settings or get_settings()
    applied_now: list[str] = []
    conn = connect(settings=s)
    try:
        with conn.cursor() as cur:
            fresh = [db for db in s.databases.values() if not _table_names(cur, db)]
            for db in s.databases.values():
                cur.execute(
                    f"CREATE DATABASE IF NOT EXISTS `{db}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
                )
            cur.execute(
                f"CREATE TABLE IF NOT EXISTS `{s.raw_db}`.{MARKER_TABLE} ("
                " db_name VARCHAR(64) NOT NULL PRIMARY KEY, purpose VARCHAR(16) NOT NULL,"
                " created_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3))"
                " COMMENT 'databases `recsys db init` created, and what for (recsys db reset reads it)'"
            )
            for db in fresh:
                cur.execute(
                    f"INSERT IGNORE INTO `{s.raw_db}`.{MARKER_TABLE} (db_name, purpose) VALUES (%s, %s)",
                    (db, purpose),
                )
            cur.execute(
                f"CREATE TABLE IF NOT EXISTS `{s.raw_db}`.schema_migrations ("
                " version INT PRIMARY KEY, name VARCHAR(128) NOT NULL, checksum CHAR(16) NOT NULL,"
                " applied_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3))"
            )
            cur.execute(f"SELECT version, checksum FROM `{s.raw_db}`.schema_migrations")
            done = {int(v): c for v, c in cur.fetchall()}
            for mig in list_migrations():
                if mig.version in done:
                    if done[mig.version] != mig.checksum():
                        raise MigrationError(
                            f"migration {mig.path.name} changed after it was applied; add a new migration instead"
                        )
                    continue
                for stmt in split_statements(mig.render(s)):
                    cur.execute(stmt)
                cur.execute(
                    f"INSERT INTO `{s.raw_db}`.schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                    (mig.version, mig.name, mig.checksum()),
                )
                applied_now.append(mig.path.name)
            _ensure_reader(cur, s)
            _ensure_impressions_writer(cur, s)
    finally:
        conn.close()
    return applied_now


def db_status(settings: Settings | None = None) -> dict[str, object]:
    """Row counts per table of the three databases and the newest event time."""
    s = settings or get_settings()
    conn = connect(settings=s)
    try:
        with conn.cursor() as cur:
            names = ", ".join(f"'{d}'" for d in s.databases.values())
            cur.execute(
                "SELECT table_schema, table_name FROM information_schema.tables "
                f"WHERE table_schema IN ({names}) ORDER BY table_schema, table_name"
            )
            tables = cur.fetchall()
            counts: dict[str, int] = {}
            for schema, table in tables:
                cur.execute(f"SELECT COUNT(*) FROM `{schema}`.`{table}`")
                counts[f"{schema}.{table}"] = int(cur.fetchone()[0])
            last_event = None
            if f"{s.raw_db}.user_behavior" in counts:
                cur.execute(f"SELECT MAX(ts) FROM `{s.raw_db}`.user_behavior")
                last_event = cur.fetchone()[0]
            version = 0
            if f"{s.raw_db}.schema_migrations" in counts:
                cur.execute(f"SELECT COALESCE(MAX(version), 0) FROM `{s.raw_db}`.schema_migrations")
                version = int(cur.fetchone()[0])
    finally:
        conn.close()
    return {"tables": counts, "last_event_ts": last_event, "schema_version": version}


def _why_not_droppable(cur, db: str, marks: dict[str, str]) -> str | None:
    """None when ``db`` may be dropped (absent, marked demo/test, or no rows), else why not."""
    if not _database_exists(cur, db) or marks.get(db) in RESETTABLE:
        return None
    for table in _table_names(cur, db):
        if table in (
            "schema_migrations",
            MARKER_TABLE,
            "forget_salt",
        ):  # bookkeeping written by init, not data
            continue
        cur.execute(f"SELECT 1 FROM `{db}`.`{table}` LIMIT 1")
        if cur.fetchone() is not None:
            mark = f"is marked '{marks[db]}'" if db in marks else "has no demo/test mark of `recsys db init`"
            return f"{db} holds data ({table}) and {mark}"
    return None


def drop_databases(settings: Settings | None = None, *, force: bool = False) -> None:
    """Drop the three databases (tests and `recsys db reset`). Unless ``force``, first checks that
    each is absent, empty or marked demo/test by :func:`init_db`, and raises :class:`ResetRefused`
    (dropping nothing) otherwise."""
    s = settings or get_settings()
    conn = connect(settings=s)
    try:
        with conn.cursor() as cur:
            if not force:
                marks: dict[str, str] = {}
                if MARKER_TABLE in _table_names(cur, s.raw_db):
                    cur.execute(f"SELECT db_name, purpose FROM `{s.raw_db}`.{MARKER_TABLE}")
                    marks = {str(d): str(p) for d, p in cur.fetchall()}
                reasons = [r for db in s.databases.values() if (r := _why_not_droppable(cur, db, marks))]
                if reasons:
                    raise ResetRefused(
                        f"refusing to drop databases on {s.mysql_host}:{s.mysql_port}: {'; '.join(reasons)}. "
                        "A reset drops only what `recsys db reset`, the demo or the tests created; use other "
                        "names (RECSYS_DB_PREFIX or RECSYS_RAW_DB/_MARTS_DB/_SERVING_DB), or drop them yourself "
                        "if you mean it"
                    )
            for db in s.databases.values():
                cur.execute(f"DROP DATABASE IF EXISTS `{db}`")
    finally:
        conn.close()
