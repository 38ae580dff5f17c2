"""Builders of Great Expectations expectations in GX's JSON form, with ids derived from their
content (uuid5), so regenerating the committed suites is byte-identical unless a contract changed.

Small on purpose: :mod:`ml.quality.expectations` states every suite with these few verbs
(``not_null``, ``between``, ``unique``...), each carrying the sentence of why it exists (shown in Data
Docs), and :mod:`ml.quality.suites` uses :func:`gx_id` for the ids of the rest of the GX project.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

_NS = uuid.uuid5(uuid.NAMESPACE_URL, "https://github.com/recsys-intent/expectations")


def gx_id(kind: str, name: str) -> str:
    return str(uuid.uuid5(_NS, f"{kind}/{name}"))


def expect(type_: str, description: str, **kwargs: Any) -> dict[str, Any]:
    """One expectation in GX's JSON form; the description says why it exists (shown in Data Docs)."""
    ident = json.dumps([type_, kwargs], sort_keys=True)
    return {
        "description": description,
        "id": gx_id("expectation", ident),
        "kwargs": kwargs,
        "meta": {},
        "severity": "critical",
        "type": type_,
    }


def param(name: str) -> dict[str, str]:
    return {"$PARAMETER": name}


def not_null(col: str, why: str = "the model reads it", **kw: Any) -> dict[str, Any]:
    return expect("expect_column_values_to_not_be_null", f"{col} is never NULL: {why}", column=col, **kw)


def between(col: str, lo: Any, hi: Any, why: str, **kw: Any) -> dict[str, Any]:
    return expect("expect_column_values_to_be_between", why, column=col, min_value=lo, max_value=hi, **kw)


def unique(cols: list[str], why: str, **kw: Any) -> dict[str, Any]:
    if len(cols) == 1:
        return expect("expect_column_values_to_be_unique", why, column=cols[0], **kw)
    return expect("expect_compound_columns_to_be_unique", why, column_list=cols, **kw)


def row_count(table: str) -> dict[str, Any]:
    return expect(
        "expect_table_row_count_to_be_between",
        f"{table} row count within the range allowed around the previous successful run",
        min_value=param(f"{table}_min_rows"),
        max_value=param(f"{table}_max_rows"),
    )


def mean(col: str, lo: float, hi: float, why: str) -> dict[str, Any]:
    return expect("expect_column_mean_to_be_between", why, column=col, min_value=lo, max_value=hi)


def varies(col: str) -> dict[str, Any]:
    return expect(
        "expect_column_stdev_to_be_between",
        f"{col} is not constant (a feature collapsed to one value carries no signal)",
        column=col,
        min_value=1e-9,
    )


def rows(query: str, why: str) -> dict[str, Any]:
    return expect("unexpected_rows_expectation", why, unexpected_rows_query=query)
