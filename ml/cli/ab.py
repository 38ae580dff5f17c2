"""`recsys ab report`: champion vs challenger of an A/B run on the served outcomes (issue 17)."""

from __future__ import annotations

import typer

from ml.cli.common import console, fail

ab_app = typer.Typer(help="A/B experiments of champion vs challenger.", no_args_is_help=True)


@ab_app.command("report")
def report_cmd(
    experiment: str = typer.Option(
        None,
        "--experiment",
        help="Experiment name (RECSYS_AB_SALT); default the running one, else the newest.",
    ),
    metric: str = typer.Option("ctr", "--metric", help="ctr (clicks), cart or purchase, per shown item."),
    alpha: float = typer.Option(0.05, "--alpha", min=0.0001, max=0.5, help="Two-sided significance level."),
) -> None:
    """Per-arm rates over matured impressions (fct_served_outcomes), the difference with its confidence
    interval and p-value (per-user delta method, ml/models/ab.py), and a verdict."""
    from ml.config import get_settings
    from ml.models.ab import METRICS
    from ml.models.ab_outcomes import ABReportError, ab_report

    if metric not in METRICS:
        fail(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
    try:
        rep = ab_report(get_settings(), experiment, metric, alpha)
    except ABReportError as exc:
        fail(exc)
    r, run = rep.result, rep.run
    window = f"{run.started_at:%Y-%m-%d %H:%M} → " + (
        f"{run.ended_at:%Y-%m-%d %H:%M}" if run.ended_at else "running"
    )
    lines = [
        f"experiment {run.name} ({window} UTC), challenger share {run.share:.0%}: "
        f"champion {run.champion_version} vs challenger {run.challenger_version}",
        f"{'arm':<11} {'users':>8} {'impressions':>12} {'events':>8} {metric:>9}",
    ]
    for a in (r.champion, r.challenger):
        lines.append(
            f"{a.arm:<11} {a.users:>8,} {a.impressions:>12,} {a.events:>8,} {a.rate:>9.4%} ± {1.96 * a.se:.4%}"
        )
    lift = f" ({r.relative_lift:+.1%} relative)" if r.relative_lift is not None else ""
    lines.append(
        f"difference {r.diff:+.4%}{lift}, {1 - r.alpha:.0%} CI [{r.ci_low:+.4%}, {r.ci_high:+.4%}], "
        f"p = {r.p_value:.4f}"
    )
    if rep.misassigned_users:
        lines.append(
            f"left out: {rep.misassigned_users} user(s) logged in an arm the split does not give them"
        )
    if r.srm_broken:
        lines.append(
            f"WARNING: sample ratio mismatch (p = {r.srm_p:.2g}): the split or the logging is broken"
        )
    lines.append(f"verdict: {r.verdict}")
    console.print("\n".join(lines), highlight=False, soft_wrap=True)
