"""What a quality gate remembers between runs: the previous mart row counts (the next run's
allowed range) and the raw watermark (the last validated ``event_id``), in
``$RECSYS_HOME/gx/state.json``, keyed by database name so prefixed databases never mix.

A module of its own because it is the gates' only persistent state; written atomically (temporary
file, then rename) so a crash never leaves half a file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ml.config import Settings


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
