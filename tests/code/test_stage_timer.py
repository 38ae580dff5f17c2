"""The training run's per-stage clock (a fake clock: no wall-clock assertions)."""

from __future__ import annotations

from ml.training.timing import StageTimer


def test_each_stage_lasts_until_the_next_message() -> None:
    ticks = iter([0.0, 2.0, 7.5, 8.0])
    seen: list[str] = []
    timer = StageTimer(seen.append, clock=lambda: next(ticks))
    timer("build cuts")
    timer("fit LightGBM")
    timer("log to MLflow")
    timer.stop()
    assert seen == ["build cuts", "fit LightGBM", "log to MLflow"]  # messages still forwarded
    assert timer.table() == [("build cuts", 2.0), ("fit LightGBM", 5.5), ("log to MLflow", 0.5)]
    assert timer.total() == 8.0


def test_no_stage_no_rows() -> None:
    timer = StageTimer(clock=lambda: 1.0)
    timer.stop()
    assert timer.table() == [] and timer.total() == 0


def test_the_cli_table_adds_the_work_beside_the_builds_without_counting_it_twice() -> None:
    from rich.console import Console

    from ml.cli.train import _stage_table

    def text(table) -> str:
        console = Console(width=120, record=True)
        console.print(table)
        return console.export_text()

    stages = [("dbt point-in-time build: val", 30.0), ("fit LightGBM lambdarank", 10.0)]
    plain, beside = text(_stage_table(stages)), text(_stage_table(stages, 17.5))
    assert "40.0" in plain and "second thread" not in plain
    assert "40.0" in beside  # the total is still the stages' wall time
    line = next(row for row in beside.splitlines() if "second thread" in row)
    assert "17.5" in line
