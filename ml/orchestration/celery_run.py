"""Drive the DAGs on a running CeleryExecutor deployment through Airflow 3's REST API (``scripts/airflow_celery.sh``).

The data team's path, scripted: log in through the auth manager's token endpoint, unpause the DAGs,
trigger ``recsys_train`` with Params, wait, let one user act, trigger ``recsys_refresh``, wait, then
check what a person would check in the UI and the serving tables:

* both runs ``success``, every task that ran went through a Celery worker (each worker's own log
  names the task instances it executed), the train task on the ``gpu`` queue and on the worker that
  serves it;
* the train run's publish emitted ``recsys_published_champion`` (the asset the refresh DAG is scheduled on);
* the acting user's ``user_topn`` rows changed after the refresh, and nobody else's.

``python -m ml.orchestration.celery_run --api URL --password-file FILE --worker-log NAME=LOG ...``
prints a summary, writes it as JSON (``--summary``) and exits non-zero listing every failed check.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from ml.config import Settings, get_settings
from ml.orchestration.celery_checks import (
    attribute,
    changed_users,
    check_gpu_task,
    check_run,
    parse_worker_log,
    plain,
    print_summary,
    run_seconds,
    summary_of,
)

#: Params of the train run: the quick flow of tests/dags/test_dag_runs.py (TRAIN_CONF), so the run
#: proves the executor in minutes rather than re-measuring the models.
TRAIN_CONF: dict[str, Any] = {
    "max_staleness_hours": 0,
    "use_tf": False,
    "xgboost": False,
    "session_train": False,
    "rule_ablation": False,
    "label_hours": 24,
    "topn": 20,
}
TRAIN_DAG, REFRESH_DAG = "recsys_train", "recsys_refresh"
PUBLISHED_ASSET = "recsys_published_champion"
FINISHED = {"success", "failed"}


class ApiError(RuntimeError):
    """A REST call answered with an HTTP error (the message carries method, path, status and body)."""


@dataclass
class Api:
    """A minimal JSON client for ``/api/v2`` and ``/auth`` (stdlib only: no extra dependency)."""

    base: str
    token: str = field(default="", repr=False)

    def call(self, method: str, path: str, body: Any = None, **query: Any) -> Any:
        url = self.base.rstrip("/") + path
        if query:
            url += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, method=method)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:500]
            raise ApiError(f"{method} {path}: HTTP {exc.code}: {detail}") from None
        return json.loads(raw) if raw else None

    def login(self, username: str, password: str) -> None:
        """SimpleAuthManager: ``POST /auth/token`` with the user's password → a JWT for ``/api/v2``."""
        self.token = self.call("POST", "/auth/token", {"username": username, "password": password})[
            "access_token"
        ]


def read_password(path: Path, username: str) -> str:
    """The generated password of ``username`` (SimpleAuthManager writes ``{user: password}`` JSON)."""
    passwords = json.loads(path.read_text())
    if username not in passwords:
        raise KeyError(f"{path} has no password for {username!r} (users: {sorted(passwords)})")
    return passwords[username]


def wait_until_ready(api: Api, dag_ids: list[str], timeout_s: float, poll_s: float = 5.0) -> None:
    """Wait for a healthy scheduler and DAG processor and for every DAG to be parsed; a DAG import
    error stops the wait at once with the error text (waiting would not fix it)."""
    deadline, last = time.monotonic() + timeout_s, "nothing answered"
    while time.monotonic() < deadline:
        try:
            health = api.call("GET", "/api/v2/monitor/health")
            unhealthy = [
                k for k in ("metadatabase", "scheduler", "dag_processor") if health[k]["status"] != "healthy"
            ]
            errors = api.call("GET", "/api/v2/importErrors")["import_errors"]
            if errors:
                raise RuntimeError(
                    "DAG import errors: " + "; ".join(f"{e['filename']}: {e['stack_trace']}" for e in errors)
                )
            parsed = [d for d in dag_ids if _dag_exists(api, d)]
            if not unhealthy and len(parsed) == len(dag_ids):
                return
            last = f"unhealthy: {unhealthy}, parsed: {parsed}"
        except (ApiError, OSError) as exc:
            last = str(exc)
        time.sleep(poll_s)
    raise TimeoutError(f"Airflow not ready after {timeout_s:.0f} s ({last})")


def _dag_exists(api: Api, dag_id: str) -> bool:
    try:
        api.call("GET", f"/api/v2/dags/{dag_id}")
        return True
    except ApiError as exc:
        if "HTTP 404" in str(exc):
            return False
        raise


def unpause(api: Api, dag_id: str) -> None:
    api.call("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})


def trigger(api: Api, dag_id: str, conf: dict[str, Any]) -> str:
    """A manual run, as the UI's Trigger button makes it; returns its run id."""
    run = api.call("POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf})
    return run["dag_run_id"]


def wait_run(api: Api, dag_id: str, run_id: str, timeout_s: float, poll_s: float = 10.0) -> dict[str, Any]:
    """Poll the run until it is ``success`` or ``failed``; print each state change."""
    deadline, state = time.monotonic() + timeout_s, None
    while time.monotonic() < deadline:
        run = api.call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}")
        if run["state"] != state:
            state = run["state"]
            print(f"  {dag_id} {run_id}: {state}", flush=True)
        if state in FINISHED:
            return run
        time.sleep(poll_s)
    raise TimeoutError(f"{dag_id} run {run_id} still {state} after {timeout_s:.0f} s")


def task_instances(api: Api, dag_id: str, run_id: str) -> list[dict[str, Any]]:
    """Every task instance of the run (the endpoint pages at 100 at most)."""
    out: list[dict[str, Any]] = []
    path = f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}/taskInstances"
    while True:
        page = api.call("GET", path, limit=100, offset=len(out))
        out += page["task_instances"]
        if not page["task_instances"] or len(out) >= page["total_entries"]:
            return out


def asset_events(api: Api, dag_id: str, run_id: str) -> list[str]:
    """Names of the assets the run's tasks emitted."""
    page = api.call("GET", "/api/v2/assets/events", source_dag_id=dag_id, source_run_id=run_id, limit=100)
    return sorted({e["name"] or e["uri"] for e in page["asset_events"]})


# --- the project's MySQL ------------------------------------------------------------------------


def read_topn(s: Settings) -> dict[int, list[tuple]]:
    """``{user: [(rank, item, score, source, model_version), ...]}`` of ``user_topn``."""
    from ml.db import connect

    conn = connect(s.serving_db, settings=s)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT user_id, `rank`, item_id, score, source, model_version FROM user_topn ORDER BY user_id, `rank`"
            )
            rows = cur.fetchall()
    finally:
        conn.close()
    out: dict[int, list[tuple]] = {}
    for r in rows:
        out.setdefault(int(r[0]), []).append(tuple(r[1:]))
    return out


def act(s: Settings) -> int:
    """The most active user searches, browses two in-stock items of the biggest category and carts
    one, minutes after the newest event (as in tests/dags/test_dag_runs.py); returns the user."""
    from ml.db import connect

    conn = connect(s.raw_db, settings=s)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT MAX(ts) FROM user_behavior")
            t0 = cur.fetchone()[0] + timedelta(minutes=5)
            cur.execute("SELECT user_id FROM user_behavior GROUP BY user_id ORDER BY COUNT(*) DESC LIMIT 1")
            user = int(cur.fetchone()[0])
            cur.execute("SELECT category_id FROM items GROUP BY category_id ORDER BY COUNT(*) DESC LIMIT 1")
            cat = int(cur.fetchone()[0])
            cur.execute(
                "SELECT item_id FROM items WHERE category_id=%s AND in_stock=1 ORDER BY item_id LIMIT 2",
                (cat,),
            )
            items = [int(r[0]) for r in cur.fetchall()]
            if len(items) < 2:
                raise RuntimeError(f"category {cat} has fewer than two in-stock items: cannot act")
            rows = [(user, None, f"{user}-live", "search", "something new", t0)]
            rows += [
                (user, it, f"{user}-live", bt, None, t0 + timedelta(seconds=10 * (k + 1)))
                for k, (it, bt) in enumerate([(items[0], "browse"), (items[1], "browse"), (items[1], "cart")])
            ]
            cur.executemany(
                "INSERT INTO user_behavior (user_id, item_id, session_id, behavior_type, query_text, ts) "
                "VALUES (%s,%s,%s,%s,%s,%s)",
                rows,
            )
    finally:
        conn.close()
    return user


# --- the whole drive ----------------------------------------------------------------------------


def _run_once(api: Api, dag_id: str, conf: dict[str, Any], timeout_s: float, executed_of) -> dict[str, Any]:
    t0 = time.monotonic()
    run_id = trigger(api, dag_id, conf)
    print(f"triggered {dag_id} through the REST API: {run_id}", flush=True)
    run = wait_run(api, dag_id, run_id, timeout_s)
    wall = round(time.monotonic() - t0, 1)
    tis = task_instances(api, dag_id, run_id)
    return {
        "dag_id": dag_id,
        "run_id": run_id,
        "run": run,
        "tis": tis,
        "wall_s": wall,
        "workers_of": attribute(dag_id, run_id, tis, executed_of()),
        **run_seconds(run),
    }


def drive(args: argparse.Namespace) -> dict[str, Any]:
    """Trigger, wait and check both DAGs; returns the summary (``problems`` empty when all passed)."""
    s = get_settings()
    logs = dict(spec.split("=", 1) for spec in args.worker_log)

    def executed_of() -> dict[str, set[tuple[str, str, str]]]:
        return {name: parse_worker_log(Path(path).read_text(errors="replace")) for name, path in logs.items()}

    api = Api(args.api)
    api.login(args.user, read_password(Path(args.password_file), args.user))
    wait_until_ready(api, [TRAIN_DAG, REFRESH_DAG], args.ready_timeout)
    for dag_id in (TRAIN_DAG, REFRESH_DAG):
        unpause(api, dag_id)

    before_train = read_topn(s)
    train = _run_once(api, TRAIN_DAG, TRAIN_CONF, args.run_timeout, executed_of)
    published = asset_events(api, TRAIN_DAG, train["run_id"])
    after_train = read_topn(s)
    problems = check_run(TRAIN_DAG, train["run"], train["tis"], train["workers_of"])
    problems += check_gpu_task(train["tis"], train["workers_of"], "train", set(args.gpu_worker))
    if PUBLISHED_ASSET not in published:
        problems.append(f"{TRAIN_DAG}: no {PUBLISHED_ASSET} asset event (emitted: {published})")
    if not after_train or before_train == after_train:
        problems.append(f"{TRAIN_DAG}: user_topn not published ({len(after_train)} users)")
    summary: dict[str, Any] = {
        "runs": [summary_of(train)],
        "published_assets": published,
        "served_users": len(after_train),
        "problems": problems,
    }
    if train["run"]["state"] != "success":
        return summary  # a refresh without a published champion would only skip

    user = act(s)
    print(f"user {user} acted (4 new events)", flush=True)
    refresh = _run_once(api, REFRESH_DAG, {}, args.run_timeout, executed_of)
    after_refresh = read_topn(s)
    problems += check_run(REFRESH_DAG, refresh["run"], refresh["tis"], refresh["workers_of"])
    changed = changed_users(after_train, after_refresh)
    if changed != {user}:
        problems.append(
            f"{REFRESH_DAG}: users whose top-N changed {sorted(changed)[:10]}, expected only [{user}]"
        )
    summary["runs"].append(summary_of(refresh))
    summary.update(
        acting_user=user,
        acting_user_top5_before=[list(map(plain, r)) for r in after_train.get(user, [])[:5]],
        acting_user_top5_after=[list(map(plain, r)) for r in after_refresh.get(user, [])[:5]],
        changed_users=sorted(changed),
    )
    return summary


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--api", required=True, help="API server base URL, e.g. http://127.0.0.1:18080")
    p.add_argument("--user", default="airflow")
    p.add_argument("--password-file", required=True, help="SimpleAuthManager's generated passwords JSON")
    p.add_argument("--worker-log", action="append", required=True, help="NAME=PATH of a Celery worker's log")
    p.add_argument(
        "--gpu-worker", action="append", required=True, help="NAME of a worker serving the gpu queue"
    )
    p.add_argument("--ready-timeout", type=float, default=600)
    p.add_argument("--run-timeout", type=float, default=3600)
    p.add_argument("--summary", help="write the summary JSON here")
    args = p.parse_args(argv)
    summary = drive(args)
    print_summary(summary)
    if args.summary:
        Path(args.summary).write_text(json.dumps(summary, indent=2, default=str))
    return 1 if summary["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
