"""What a quality gate remembers between runs: the previous mart row counts (the next run's
allowed range) and the raw watermark (the last validated ``event_id``, with the gaps of ids below it
that were not committed yet when it advanced: ``raw_gaps``, see :mod:`ml.data.gaps`), in
``$RECSYS_HOME/gx/state.json``, keyed by database name so prefixed databases never mix.

A module of its own because it is the gates' only persistent state; written atomically (temporary
file, then rename) so a crash never leaves half a file.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from ml.config import Settings
from ml.data.gaps import Gap


def _state_path(settings: Settings) -> Path:
    return settings.home / "gx" / "state.json"


def load_state(settings: Settings) -> dict[str, Any]:
    """Previous mart row counts and the raw watermark, keyed by database name."""
    p = _state_path(settings)
    return json.loads(p.read_text()) if p.exists() else {}


def save_state(settings: Settings, state: dict[str, Any]) -> None:
    p = _state_path(settings)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2, sort_keys=True, default=str))
    tmp.replace(p)


def forget_databases(settings: Settings, names: Iterable[str]) -> None:
    """Drop what the gates remember about ``names`` (``recsys db reset``: a re-created database
    starts its event ids at 1 again, so an old raw watermark would hide its first events)."""
    state = load_state(settings)
    gone = [n for n in names if n in state]
    if gone:
        for n in gone:
            del state[n]
        save_state(settings, state)


def raw_gaps(entry: dict[str, Any]) -> list[Gap]:
    """The ``raw_gaps`` of a raw database's state entry."""
    return [Gap(int(a), int(b), datetime.fromisoformat(seen)) for a, b, seen in entry.get("raw_gaps", [])]


def gaps_json(gaps: list[Gap]) -> list[list[Any]]:
    return [[g.first, g.last, g.seen_at.isoformat()] for g in gaps]
