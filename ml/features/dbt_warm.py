"""One warm dbt process per Python process, for the point-in-time builds that a training run repeats.

:class:`WarmDbt` starts ``ml/features/dbt_worker.py`` with the dbt venv's Python on first use and sends
it one invocation at a time; the worker imports dbt once and reuses each parse (see its docstring), so
a cut's build no longer pays dbt's start-up and a full re-parse (~9 s per build on this project's
2-core box, eight builds per training run). Same arguments, vars, environment, project folder and
artifacts as the ``dbt`` subprocess of :func:`ml.features.dbt.run_dbt`; a failed invocation raises the
same :class:`~ml.features.dbt.DbtError`, and a worker that died is replaced on the next call. A forked
child (an Airflow task runner) never writes to its parent's worker: it starts its own.
"""

from __future__ import annotations

import atexit
import json
import os
import subprocess
import threading
from pathlib import Path

WORKER = Path(__file__).with_name("dbt_worker.py")


class WarmDbt:
    """A dbt worker process (started lazily; one request at a time)."""

    def __init__(self, python: Path, log_path: Path) -> None:
        self.python, self.log_path = python, log_path
        self._proc: subprocess.Popen | None = None
        self._pid = 0  # the process that started the worker
        self._lock = threading.Lock()

    def invoke(self, args: list[str], env: dict[str, str], cwd: Path) -> tuple[bool, str]:
        """Run ``dbt <args>`` in the worker; (success, dbt's log lines of this invocation)."""
        with self._lock:
            proc = self._worker()
            request = {"args": args, "env": env, "cwd": str(cwd)}
            try:
                proc.stdin.write(json.dumps(request) + "\n")
                proc.stdin.flush()
                line = proc.stdout.readline()
            except (BrokenPipeError, OSError):
                line = ""
            if not line:  # the worker died: report it with its console's tail, start a fresh one next time
                self._proc = None
                try:
                    code = proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    code = proc.wait()
                tail = "\n".join(self.log_path.read_text(errors="replace").splitlines()[-30:])
                return False, f"the dbt worker ({self.python} {WORKER.name}) exited (code {code}):\n{tail}"
            reply = json.loads(line)
            return bool(reply["ok"]), str(reply["output"])

    def close(self) -> None:
        """End the worker (EOF on its stdin), if this process started it."""
        with self._lock:
            proc, self._proc = self._proc, None
            if proc is None or self._pid != os.getpid():
                return
            try:
                proc.stdin.close()
                proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                proc.kill()

    def _worker(self) -> subprocess.Popen:
        if self._proc is not None and self._pid == os.getpid() and self._proc.poll() is None:
            return self._proc
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "w") as console:  # dbt's console; the replies carry each invocation's lines
            self._proc = subprocess.Popen(
                [str(self.python), str(WORKER)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=console,
                text=True,
                bufsize=1,
            )
        self._pid = os.getpid()
        return self._proc


_workers: dict[Path, WarmDbt] = {}
_workers_lock = threading.Lock()


def warm_dbt(dbt_executable: Path, log_path: Path) -> WarmDbt:
    """The worker for this dbt venv (its ``bin/python`` next to ``dbt``), closed at exit; its console
    (dbt's own output, a crash's traceback) goes to ``log_path`` (the first caller's)."""
    python = dbt_executable.parent / "python"
    with _workers_lock:
        if python not in _workers:
            _workers[python] = WarmDbt(python, log_path)
            atexit.register(_workers[python].close)
        return _workers[python]
