"""The dbt macro ``normalize_query`` (MariaDB) and ``ml.search.text.normalize_query`` (Python) give
the same key: the query tables are keyed in SQL and looked up from Python.

The macro is compiled by dbt itself (``dbt compile --inline``) and run over a table of strings, so
the SQL under test is exactly what the models get. Strings whose Python form depends on NFKC
(full-width letters, ligatures) are kept out of the equality: MariaDB has no NFKC, and the macro
leaves them unfolded; for those the test checks that utf8mb4_unicode_ci (the collation of the
connection and of the serving tables) compares the two forms equal, which is what makes a lookup by
the Python key find the SQL key.
"""

from __future__ import annotations

import subprocess

import pytest

from ml.db import connect
from ml.search.text import MAX_QUERY_CHARS, normalize_query

#: strings on which SQL and Python must agree exactly
SAME = [
    "Running Shoes",
    "  Trainers!!  ",
    "wireless earphones",
    "iPhone 15 Pro",
    "USB-C cable",
    "men's t-shirt",
    "a__b",
    "snake_case_query_",
    "rock&roll",
    "  multiple    spaces   here ",
    "tab\tand\nnewline",
    "100% cotton",
    '4K TV 55"',
    "Crème brûlée",
    "ÜBER Größe",
    "Привет Мир",
    "Ελληνικά",
    "手机壳",
    "无线耳机",
    "iPhone手机",
    "iphone 手机",
    "华为Mate60 Pro手机",
    "手机壳！！",
    "【新款】手机壳",
    "スマホ ケース",
    "😀 phone 📱 case",
    "zentek z5",
    "12345",
    "phone ٣",
    "a" * 300,
    "phone case " * 30,
    "手机壳" * 50,
    "x" * 99 + " y",
    "",
    "!!!",
    "___",
    "   ",
    "🔥🔥🔥",
]
#: strings whose Python key needs NFKC: (text, the Python key)
NFKC_ONLY = [
    ("ｐｈｏｎｅ　ｃａｓｅ", "phone case"),
    ("ﬁne", "fine"),
    ("ＺＥＮＴＥＫ Ｚ５", "zentek z5"),
]


def _compiled_macro(settings, tmp_path) -> str:
    """The macro's SQL as dbt renders it, applied to ``q.s``."""
    from ml.features.dbt import dbt_env

    env = dbt_env(settings)
    env["DBT_TARGET_PATH"] = str(tmp_path / "target")
    env["DBT_LOG_PATH"] = str(tmp_path / "logs")
    proc = subprocess.run(
        [str(settings.dbt_executable), "compile", "--inline", "select {{ normalize_query('q.s') }} as n"],
        cwd=settings.dbt_project_dir,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    marker = "Compiled inline node is:"
    assert marker in proc.stdout, proc.stdout
    expression = proc.stdout.split(marker, 1)[1].strip()
    assert expression.startswith("select ") and expression.endswith(" as n"), expression
    return expression[len("select ") : -len(" as n")]


@pytest.fixture(scope="module")
def sql_normalize(settings, tmp_path_factory):
    """A function: strings → the macro's results, computed by MariaDB in the marts' connection charset."""
    expression = _compiled_macro(settings, tmp_path_factory.mktemp("normalize_query"))

    def run(texts: list[str | None]) -> list[str | None]:
        conn = connect(settings.marts_db, settings=settings)
        try:
            with conn.cursor() as cur:
                cur.execute(
                    "CREATE TEMPORARY TABLE q (id INT PRIMARY KEY, s TEXT NULL)"
                    " CHARSET utf8mb4 COLLATE utf8mb4_unicode_ci"
                )
                cur.executemany("INSERT INTO q (id, s) VALUES (%s, %s)", list(enumerate(texts)))
                cur.execute(f"SELECT id, {expression} AS n FROM q ORDER BY id")
                return [n for _, n in cur.fetchall()]
        finally:
            conn.close()

    return run


def test_sql_macro_equals_python(sql_normalize):
    got = sql_normalize(SAME)
    want = [normalize_query(t) for t in SAME]
    mismatches = [(t, g, w) for t, g, w in zip(SAME, got, want) if g != w]
    assert not mismatches
    # the cases are what they claim: Chinese kept whole, 100-char cap, blanks to ''
    assert dict(zip(SAME, got))["iPhone手机"] == "iphone手机"
    assert dict(zip(SAME, got))["snake_case_query_"] == "snake case query"
    assert all(len(g) <= MAX_QUERY_CHARS for g in got)
    assert len(dict(zip(SAME, got))["a" * 300]) == MAX_QUERY_CHARS
    assert dict(zip(SAME, got))["phone case " * 30] == normalize_query("phone case " * 30)[:MAX_QUERY_CHARS]
    assert [dict(zip(SAME, got))[t] for t in ("", "!!!", "___", "   ", "🔥🔥🔥")] == [""] * 5


def test_sql_macro_keeps_null(sql_normalize):
    """NULL stays NULL in SQL (the marts treat NULL and '' alike: neither is attributed)."""
    assert sql_normalize([None]) == [None]


def test_nfkc_variants_compare_equal_under_the_collation(settings, sql_normalize):
    texts = [t for t, _ in NFKC_ONLY]
    assert [normalize_query(t) for t in texts] == [k for _, k in NFKC_ONLY]
    got = sql_normalize(texts)
    assert got != [k for _, k in NFKC_ONLY]  # MariaDB does not fold them ...
    conn = connect(settings=settings)
    try:
        with conn.cursor() as cur:
            for sql_key, (_, python_key) in zip(got, NFKC_ONLY):
                # ... but the serving collation finds the row either way
                cur.execute("SELECT %s = %s COLLATE utf8mb4_unicode_ci", (sql_key, python_key))
                assert cur.fetchone()[0] == 1, (sql_key, python_key)
    finally:
        conn.close()
