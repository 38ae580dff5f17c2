"""Work that runs beside the point-in-time builds.

While a cut's dbt build runs, the training process only waits on the dbt worker: the build's SQL is
mostly one query at a time on MariaDB, so about one of this box's two cores sits idle for most of the
cut builds (vmstat during a 1M-event cut: ~50 % idle). The per-cut Python work that needs nothing but
the cut already read — its candidate features, its search rows — is handed to one background thread
as soon as the cut is loaded, and the main thread collects the results after the last build.

The jobs are the same pure functions on the same inputs as when they ran after the builds, so the
frames are identical; only their order in time changes. A job's exception is raised where its result
is taken; jobs not yet started are cancelled when the block exits.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any


class Beside:
    """One background thread, jobs keyed by name, run in submission order. Use as a context manager."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="beside-builds")
        self._jobs: dict[Hashable, Future] = {}
        self.seconds = 0.0  # time the jobs ran, summed (reported with the stage table)

    def submit(self, key: Hashable, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Queue ``fn(*args, **kwargs)`` under ``key`` (a key already queued is kept, not re-run)."""
        if key in self._jobs:
            return
        self._jobs[key] = self._pool.submit(self._timed, fn, *args, **kwargs)

    def _timed(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:  # only the one worker thread adds to it
            self.seconds += time.perf_counter() - start

    def has(self, key: Hashable) -> bool:
        return key in self._jobs

    def take(self, key: Hashable) -> Any:
        """The job's result (waiting for it), raising what the job raised; KeyError if never queued."""
        return self._jobs.pop(key).result()

    def close(self) -> None:
        for job in self._jobs.values():
            job.cancel()
        self._pool.shutdown(wait=True)
        self._jobs.clear()

    def __enter__(self) -> Beside:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
