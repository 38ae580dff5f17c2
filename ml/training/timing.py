"""Per-stage wall time of a training run: the progress callback doubles as the stage clock."""

from __future__ import annotations

import time

from ml.training.config import Step, noop


class StageTimer:
    """A ``Step`` that forwards each message and times it: a stage lasts from its message to the
    next one (or to :meth:`stop`). ``table()`` gives ``[(stage, seconds), ...]`` in run order."""

    def __init__(self, forward: Step = noop, clock=time.perf_counter) -> None:
        self._forward = forward
        self._clock = clock
        self._marks: list[tuple[str, float]] = []
        self._end: float | None = None

    def __call__(self, msg: str) -> None:
        self._marks.append((msg, self._clock()))
        self._forward(msg)

    def stop(self) -> None:
        self._end = self._clock()

    def table(self) -> list[tuple[str, float]]:
        end = self._clock() if self._end is None else self._end
        ends = [t for _, t in self._marks[1:]] + [end]
        return [(msg, round(stop - start, 3)) for (msg, start), stop in zip(self._marks, ends)]

    def total(self) -> float:
        return round(sum(s for _, s in self.table()), 3)
