"""A long-lived dbt process for repeated point-in-time builds (run by the dbt venv's Python, not imported).

A training run builds its cuts one after another (four cuts, most with a "rest of session" variant):
each ``dbt`` subprocess paid the start-up (importing dbt and the adapter, ~3 s on a 2-core box) and a
full parse of the project (~6 s: the var ``cut_ts`` differs per cut, and dbt re-parses everything when
a var changes). This process imports dbt once and keeps, per *parse key*, the manifest of its first
parse; later invocations run ``dbtRunner(manifest=...)``, which compiles each node with the
invocation's own vars. The parse key is the environment dbt reads (``RECSYS_*`` and ``DBT_*`` except
the artifact folders) and the vars except ``cut_ts``: the cut only renders into SQL (a literal in the
staging view, the labels and the leakage test); the graph (which models are enabled, which refs a
model takes) depends on whether ``cut_ts`` is set, ``session_cuts`` and ``label_window_users``,
all in the key, and so are the project's files (path, size, modification time: a model edited while
a long-lived process runs is parsed again, as a new ``dbt`` process would). ``ml.features.dbt_warm.WarmDbt``
starts it and talks to it.

Protocol: one JSON request per line on stdin, ``{"args": [...], "env": {...}, "cwd": "..."}``
(``args`` holds ``--vars`` like a dbt command line); one JSON reply per line on the original stdout,
``{"ok": bool, "output": "..."}`` (dbt's log lines of that invocation, or the exception). dbt's own
console output goes to stderr, which the parent writes to a log file (quoted when the worker dies).
EOF on stdin ends the process.

Only stdlib and dbt are imported here: the dbt venv has no project packages.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from collections import OrderedDict

#: environment variables that select the artifact folders only, not what dbt parses
NOT_PARSED = ("DBT_TARGET_PATH", "DBT_LOG_PATH")
#: folders of the project that hold dbt's own output, not what it parses
NOT_SOURCES = ("target", "logs", "dbt_packages")
#: parses kept (least recently used dropped): a training run needs two (plain and session builds)
MAX_MANIFESTS = 4


def parse_key(args: list[str], env: dict[str, str], cwd: str) -> str:
    """What a reusable manifest must share with the invocation (see the module docstring)."""
    vars_ = {}
    if "--vars" in args:
        vars_ = dict(json.loads(args[args.index("--vars") + 1]))
    if "cut_ts" in vars_:
        vars_["cut_ts"] = "<set>"
    parsed_env = {k: v for k, v in env.items() if k.startswith(("RECSYS_", "DBT_")) and k not in NOT_PARSED}
    return json.dumps(
        [cwd, project_files(cwd), sorted(parsed_env.items()), sorted(vars_.items())], default=str
    )


def project_files(root: str) -> list[tuple[str, int, int]]:
    """(path, size, mtime in ns) of every file of the dbt project under ``root``: not its output folders
    nor hidden files (dbt writes its ``.user.yml`` there, the profiles folder being the project's)."""
    out: list[tuple[str, int, int]] = []
    for folder, dirs, files in os.walk(root):
        if folder == root:
            dirs[:] = [d for d in dirs if d not in NOT_SOURCES]
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if name.startswith("."):  # dbt's own .user.yml (the profiles folder is the project's)
                continue
            st = os.stat(os.path.join(folder, name))
            out.append((os.path.relpath(os.path.join(folder, name), root), st.st_size, st.st_mtime_ns))
    return sorted(out)


def _vars_args(args: list[str]) -> list[str]:
    return args[args.index("--vars") : args.index("--vars") + 2] if "--vars" in args else []


def main() -> None:
    # run as a file, this folder comes first on sys.path, and its dbt.py would shadow the dbt package
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    replies = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # dbt's console output must not reach the reply channel
    from dbt.cli.main import dbtRunner

    lines: list[str] = []

    def collect(event) -> None:
        if event.info.level in ("info", "warn", "error") and event.info.msg:
            lines.append(str(event.info.msg))

    manifests: OrderedDict[str, object] = OrderedDict()
    base_env = dict(os.environ)
    for raw in sys.stdin:
        request = json.loads(raw)
        args, cwd = list(request["args"]), request["cwd"]
        os.environ.clear()
        os.environ.update(base_env)
        os.environ.update(request["env"])
        os.chdir(cwd)
        lines.clear()
        try:
            key = parse_key(args, request["env"], cwd)
            if key not in manifests:
                parsed = dbtRunner(callbacks=[collect]).invoke(["parse", *_vars_args(args)])
                if not parsed.success:
                    raise RuntimeError(f"dbt parse failed: {parsed.exception or 'see the log lines above'}")
                manifests[key] = parsed.result
                while len(manifests) > MAX_MANIFESTS:
                    manifests.popitem(last=False)
            manifests.move_to_end(key)
            result = dbtRunner(manifest=manifests[key], callbacks=[collect]).invoke(args)
            ok = bool(result.success)
            if result.exception is not None:
                lines.append(f"{type(result.exception).__name__}: {result.exception}")
        except Exception:  # reported to the caller, which raises DbtError with it
            ok = False
            lines.append(traceback.format_exc())
        replies.write(json.dumps({"ok": ok, "output": "\n".join(lines)}) + "\n")


if __name__ == "__main__":
    main()
