"""Task entries of the publisher (Airflow tasks and the CLI): load the champion from the registry, then
publish it fully (gated by the GX top-N suite) or refresh the users who just acted; during an A/B
experiment the challenger too (:mod:`ml.publish.ab`). The search lists
come from the search champion, or the search baseline while none is registered.
"""

from __future__ import annotations

from ml.config import Settings
from ml.db import connect
from ml.experiment import Experiment
from ml.publish.ab import ChallengerLists, live_experiment
from ml.publish.common import ChampionNotPublished, NoChampion, Recommender, Validator, jsonable
from ml.publish.full import publish_full
from ml.publish.refresh import publish_refresh
from ml.publish.search import load_search_lists
from ml.quality.topn import gx_topn_validator


def _registry():
    """:mod:`ml.registry.champion`, or :class:`NoChampion` when the registry cannot be imported."""
    try:
        from ml.registry import champion
    except ImportError as exc:
        raise NoChampion(
            f"no model registry available ({exc}): train and register a champion first (`recsys train`)"
        ) from None
    return champion


def champion_version(settings: Settings) -> str:
    """The champion's ``model_version`` without loading it (no marts read): the refresh guard's check.

    Raises :class:`NoChampion` as :func:`_load_registered` does."""
    registry = _registry()
    try:
        return registry.champion_label(settings)
    except LookupError as exc:
        raise NoChampion(f"no champion model registered: {exc}") from None


def _load_registered(
    settings: Settings, *, challenger: bool, scoped: bool = False
) -> tuple[tuple[Recommender, str], tuple[Recommender, str] | None]:
    """(champion, version) and, when asked and registered, (challenger, version), over one marts load
    (``scoped``: recommenders that read only the scored users' per-user marts, for a refresh).

    Raises :class:`NoChampion` with a message a person can act on when the registry is not
    available or holds no champion."""
    registry = _registry()
    aliases = (
        (registry.store.CHAMPION, registry.store.CHALLENGER) if challenger else (registry.store.CHAMPION,)
    )
    try:
        found = registry.load_aliases(settings, aliases, scoped=scoped)
    except LookupError as exc:
        raise NoChampion(f"no champion model registered: {exc}") from None
    pairs = [None if rec is None else (rec, str(getattr(rec, "model_version", None) or "")) for rec in found]
    if pairs[0] is None or not pairs[0][1]:
        raise NoChampion(
            "the registry returned no champion with a model_version; promote one to the 'champion' alias"
        )
    if challenger and pairs[1] is not None and not pairs[1][1]:
        raise NoChampion("the registry returned a challenger without a model_version")
    return pairs[0], (pairs[1] if challenger else None)


def _gx(settings: Settings, n: int | None, recommender: Recommender) -> Validator:
    """The GX top-N suite under the business rules ``recommender`` was chosen with."""
    rules = getattr(recommender, "rules", None)
    return gx_topn_validator(
        settings,
        n,
        repeat_buy_category_ids=tuple(getattr(rules, "repeat_buy_categories", ())),
        exclude_purchased=bool(getattr(rules, "exclude_purchased", True)),
    )


def publish_champion_full(
    settings: Settings, n: int | None = None, *, gx: bool = True, progress: bool = False
) -> dict:
    """Task entry (Airflow, CLI): full publish of the champion, gated by the GX top-N suite; with an
    A/B experiment configured (``RECSYS_AB_SHARE``), of the challenger too, gated the same way.

    Returns a JSON-able summary; raises :class:`PublishError` (``NoChampion``, ``ValidationFailed``...).
    """
    (recommender, version), pair = _load_registered(settings, challenger=settings.ab_on)
    validate = _gx(settings, n, recommender) if gx else None
    challenger = None
    if pair is not None:
        challenger = ChallengerLists(pair[0], pair[1], _gx(settings, n, pair[0]) if gx else None)
    search = load_search_lists(settings)  # the search champion, else the search baseline
    return jsonable(
        publish_full(
            recommender,
            version,
            settings,
            n=n,
            validate=validate,
            progress=progress,
            search=search,
            challenger=challenger,
        )
    )


def running_experiment(settings: Settings) -> Experiment | None:
    """The A/B run serving now (``ab_experiment``), or None."""
    conn = connect(settings.serving_db, settings=settings)
    try:
        return live_experiment(conn, settings)
    finally:
        conn.close()


def last_full_publish(settings: Settings) -> str | None:
    """``model_version`` of the newest full publish that swapped in (only a passed one is logged)."""
    conn = connect(settings.serving_db, settings=settings)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT model_version FROM publish_log WHERE kind = 'full' ORDER BY id DESC LIMIT 1")
            row = cur.fetchone()
    finally:
        conn.close()
    return None if row is None else str(row[0])


def require_published(settings: Settings, version: str) -> None:
    """Raise :class:`ChampionNotPublished` unless ``version``'s full publish is the one serving."""
    serving = last_full_publish(settings)
    if serving != version:
        raise ChampionNotPublished(
            f"champion {version} has no passed full publish yet (serving: {serving or 'nothing'}); "
            "refresh waits for it (`recsys publish full`, or the train DAG's publish task)"
        )


def publish_champion_refresh(
    settings: Settings,
    batch_size: int = 1000,
    n: int | None = None,
    *,
    upper_event_id: int | None = None,
    progress: bool = False,
) -> dict:
    """Task entry (Airflow, CLI): refresh users with new events using the champion; JSON-able summary.

    Pass ``upper_event_id`` = the newest event_id read before the realtime dbt models ran. Only a
    champion whose full publish passed refreshes (:func:`require_published`)."""
    # each acting user's list is rewritten in their own arm during an experiment (ml.publish.ab)
    ab = running_experiment(settings) is not None
    (recommender, version), pair = _load_registered(settings, challenger=ab, scoped=True)
    challenger = None if pair is None else ChallengerLists(*pair)
    require_published(settings, version)
    search = load_search_lists(settings)
    history, share = getattr(recommender, "history", None), getattr(search, "share_history", None)
    if history is not None and share is not None:  # one read of the 30-day history per run, not two
        share(history, _registry().HISTORY_DAYS)
    result = publish_refresh(
        recommender,
        version,
        settings,
        batch_size=batch_size,
        n=n,
        upper_event_id=upper_event_id,
        progress=progress,
        search=search,
        challenger=challenger,
    )
    return {**jsonable(result), "noop": result.noop}
