"""The refresh guard's wait (the back-to-back schedule, ``RECSYS_REFRESH_MINUTES=0``): it checks again
until the run is due or its wait is over, then skips with the last reason (no database: the check is
replaced by a scripted sequence)."""

from __future__ import annotations

import pytest
from airflow.sdk.exceptions import AirflowSkipException

from ml.orchestration import tasks

DUE = {"model_version": "m/1", "watermark": 10, "newest_event_id": 12}


class _Clock:
    """time.monotonic / time.sleep of the guard: sleeping advances the clock, nothing waits."""

    def __init__(self) -> None:
        self.now, self.sleeps = 100.0, []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture()
def scripted(monkeypatch):
    """Replace the guard's check with answers popped in order and its clock with a fake one."""
    clock, answers, asked = _Clock(), [], []

    def due():
        asked.append(clock.now)
        return answers.pop(0) if len(answers) > 1 else answers[0]

    monkeypatch.setattr(tasks, "_refresh_due", due)
    monkeypatch.setattr(tasks.time, "monotonic", clock.monotonic)
    monkeypatch.setattr(tasks.time, "sleep", clock.sleep)
    return clock, answers, asked


def test_without_a_wait_the_guard_checks_once_and_skips(scripted):
    clock, answers, asked = scripted
    answers += [(None, "no new events since event_id 10")]
    with pytest.raises(AirflowSkipException, match="no new events since event_id 10"):
        tasks.refresh_guard()
    assert len(asked) == 1 and clock.sleeps == []


def test_the_guard_returns_as_soon_as_an_event_arrives_within_its_wait(scripted):
    clock, answers, asked = scripted
    answers += [(None, "no new events since event_id 10")] * 3 + [(DUE, "")]
    assert tasks.refresh_guard(wait_s=60, poll_s=2) == DUE
    assert asked == [100.0, 102.0, 104.0, 106.0] and clock.sleeps == [2, 2, 2]


def test_the_guard_skips_with_the_last_reason_when_its_wait_is_over(scripted):
    clock, answers, asked = scripted
    answers += [
        (None, "no champion yet (none); run recsys_train first"),
        (None, "no new events since event_id 10"),
    ]
    with pytest.raises(AirflowSkipException, match="no new events since event_id 10"):
        tasks.refresh_guard(wait_s=5, poll_s=2)
    # checks at 0, 2, 4 and 6 s: the last one after the wait is over, then the skip
    assert asked == [100.0, 102.0, 104.0, 106.0]
