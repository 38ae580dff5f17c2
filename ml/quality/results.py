"""GX validation results turned into plain data and a compact summary: per validation its success,
how many expectations ran, the failures (with a sample of bad values) and the observed row count.

Apart from the stage runner because reading GX's result objects is its own, fiddly job (errors come
flat or keyed by metric id); the runner only needs :func:`collect`, :func:`summarise` and
:func:`row_counts`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ml.quality.suites import VALIDATIONS


def _failure(r: Any) -> dict[str, Any]:
    """One failed expectation as plain data, with the sample of bad values GX observed."""
    cfg = r.expectation_config
    res = r.result or {}
    kwargs = {k: v for k, v in cfg.kwargs.items() if k not in ("batch_id", "row_condition", "description")}
    column = kwargs.get("column") or ",".join(kwargs.get("column_list") or []) or "table"
    out: dict[str, Any] = {
        "expectation": cfg.type,
        "column": column,
        "description": cfg.description,
        "kwargs": kwargs,
    }
    if res.get("observed_value") is not None:
        out["observed_value"] = res["observed_value"]
    if res.get("unexpected_percent") is not None:
        out["unexpected_percent"] = round(float(res["unexpected_percent"]), 3)
        out["unexpected_count"] = int(res.get("unexpected_count") or 0)
    sample = res.get("partial_unexpected_list") or res.get("details", {}).get("unexpected_rows")
    if sample:
        out["sample"] = [str(x) for x in list(sample)[:5]]
    error = _exception_message(r.exception_info)
    if error:
        out["exception"] = error
    return out


def _exception_message(info: Any) -> str | None:
    """GX reports errors either flat or keyed by metric id; return the first message, shortened."""
    if not isinstance(info, dict):
        return None
    entries = [info] if "raised_exception" in info else [v for v in info.values() if isinstance(v, dict)]
    for e in entries:
        if e.get("raised_exception"):
            return str(e.get("exception_message")).split("\n[SQL:")[0][:300]
    return None


def _describe(f: dict[str, Any]) -> str:
    bits = [f"{f['column']}: {f['description'] or f['expectation']}"]
    if "unexpected_percent" in f:
        bits.append(f"{f['unexpected_percent']:g}% bad ({f['unexpected_count']} rows)")
    elif f["expectation"] == "unexpected_rows_expectation":
        bits.append(f"{f.get('observed_value')} unexpected row(s)")
    elif "observed_value" in f:
        bits.append(f"observed {f['observed_value']}")
    if f.get("sample"):
        bits.append("e.g. " + ", ".join(f["sample"][:3]))
    if f.get("exception"):
        bits.append("error: " + f["exception"])
    return " — ".join(bits)


def summarise(
    stage: str, validations: list[dict[str, Any]], info: dict[str, Any], seconds: float, docs: Path | None
) -> str:
    ok = all(v["success"] for v in validations)
    n_exp = sum(v["evaluated"] for v in validations)
    n_bad = sum(len(v["failures"]) for v in validations)
    head = (
        f"quality {stage}: {'PASSED' if ok else 'FAILED'} — {len(validations)} validation(s), "
        f"{n_exp - n_bad}/{n_exp} expectations met in {seconds:.1f}s"
    )
    src = f" [{info['source']}, {info.get('rows', '?')} rows]" if "source" in info else ""
    lines = [head + src]
    for v in validations:
        for f in v["failures"]:
            lines.append(f"  ✗ {v['suite']}: {_describe(f)}")
    if docs:
        lines.append(f"  Data Docs: {docs}")
    return "\n".join(lines)


def row_counts(validations: list[dict[str, Any]]) -> dict[str, int]:
    counts = {}
    for v in validations:
        if v.get("row_count") is not None:
            counts[v["asset"]] = int(v["row_count"])
    return counts


def collect(suite_results: list[Any]) -> list[dict[str, Any]]:
    out = []
    for vr in suite_results:
        asset = vr.meta.get("active_batch_definition", {}).get("data_asset_name")
        name = f"{vr.suite_name}__{asset}"
        v = VALIDATIONS.get(name)
        row_count = None
        failures = []
        for r in vr.results:
            if r.expectation_config.type == "expect_table_row_count_to_be_between":
                row_count = (r.result or {}).get("observed_value")
            if not r.success:
                failures.append(_failure(r))
        out.append(
            {
                "validation": name,
                "suite": vr.suite_name,
                "asset": v.asset if v else None,
                "success": bool(vr.success),
                "evaluated": len(vr.results),
                "failures": failures,
                "row_count": row_count,
            }
        )
    return out
