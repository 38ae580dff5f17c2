"""The cuts of one training run: point-in-time builds per cut (with their rest-of-session variants),
user sampling, which cuts each model learns from, and the candidate frames (with the TF stage).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pandas as pd

from ml.config import Settings
from ml.features.candidates import build_features
from ml.features.datasets import CutData, EventSpan, load_cut, load_items, load_session_cut
from ml.features.protocol import Split, session_cuts
from ml.models.tf.stage import TFSettings, TFStage, fit_ranker_stage, fit_two_tower_stage
from ml.training.beside import Beside
from ml.training.config import Step, TrainConfig, noop


def load_cuts(
    settings: Settings,
    split: Split,
    cfg: TrainConfig,
    step: Step = noop,
    cache: dict[tuple, CutData] | None = None,
    ready: Callable[[str, CutData], None] | None = None,
) -> dict[str, CutData]:
    """Build and read the point-in-time tables of every cut (train_0.., val, test).

    ``cache`` (a dict the caller keeps) reuses cuts already read in this process, keyed by
    (raw database, cut, label hours): one dbt build per cut even across several training runs.
    ``ready(name, cut)`` is called as soon as each cut (and rest-of-session variant) is read, before
    the next build starts (:class:`ml.training.overlap.BesideBuilds`).
    """
    items = load_items(settings)
    cuts: dict[str, CutData] = {}
    named = [(f"train_{i}", c) for i, c in enumerate(split.train_cuts)] + [
        ("val", split.val_cut),
        ("test", split.test_cut),
    ]
    wanted = session_cut_names(cfg)
    # every cut's history and label window are sliced from one read of the raw events they span
    start = min(ts for _, ts in named) - pd.Timedelta(days=cfg.history_days)
    end = max(ts for _, ts in named) + pd.Timedelta(hours=split.label_hours)
    span: EventSpan | None = None
    for name, ts in named:
        key = (settings.raw_db, ts, split.label_hours, cfg.history_days)
        if cache is not None and key in cache:
            cuts[name] = cache[key]
        else:
            step(f"dbt point-in-time build: {name} cut {ts}")
            span = span or EventSpan.read(settings, start, end)
            cuts[name] = load_cut(
                settings, ts, split.label_hours, history_days=cfg.history_days, items=items, events=span
            )
            if cache is not None:
                cache[key] = cuts[name]
        if ready is not None:
            ready(name, cuts[name])
        if name not in wanted:
            continue
        # a within-session task (a log of hours) cuts every user's session, new users included: the
        # revealed start is all the realtime models know of them; otherwise only users seen before
        within = cfg.task == "session"
        skey = (*key, "session", cfg.seed, within)
        if cache is not None and skey in cache:
            cuts[f"session_{name}"] = cache[skey]
        else:
            step(f"dbt rest-of-session build: {name} cut {ts}")
            cuts[f"session_{name}"] = session_variant(settings, cuts[name], within, cfg.seed)
            if cache is not None:
                cache[skey] = cuts[f"session_{name}"]
        if ready is not None:
            ready(f"session_{name}", cuts[f"session_{name}"])
    return cuts


def sampled(name: str, cut: CutData, cfg: TrainConfig) -> CutData:
    """The cut the recommender learns from: :func:`sample_users` to ``cfg.max_users`` (when set), except
    the test cuts, which are always evaluated whole."""
    if cfg.max_users <= 0 or name in ("test", "session_test"):
        return cut
    return sample_users(cut, cfg.max_users, cfg.seed)


def session_variant(settings: Settings, day: CutData, within: bool, seed: int) -> CutData:
    """The rest-of-session variant of a loaded cut: users seen before the cut, or (``within``, for a
    log of hours) every user with a session in the label window."""
    who = day.window["user_id"] if within else day.users["user_id"]
    return load_session_cut(settings, day, session_cuts(day.window, who.astype("int64").unique(), seed=seed))


def session_cut_names(cfg: TrainConfig) -> set[str]:
    """The cuts that also get a "rest of session" variant (``session_<name>``): the test cut for the
    session task; validation and the rerankers' training cuts when the rerankers learn from it."""
    names: set[str] = {"test"} if cfg.session_task or cfg.task == "session" else set()
    if cfg.session_train:  # every training cut (the DIN ranker's too) and validation
        names |= {"val", *(f"train_{i}" for i in range(cfg.n_train_cuts))}
    return names


def sample_users(cut: CutData, max_users: int, seed: int) -> CutData:
    """The cut restricted to a seeded random sample of ``max_users`` of its candidate users.

    Every user-keyed frame (features, intent, candidates, history, labels) is filtered alike, so
    the sample is a smaller but consistent shop; item-level marts stay whole.
    """
    users = np.sort(cut.candidates["user_id"].unique())
    if len(users) <= max_users:
        return cut
    keep = set(np.random.default_rng(seed).choice(users, size=max_users, replace=False).tolist())

    def only(df: pd.DataFrame | None) -> pd.DataFrame | None:
        return (
            df if df is None or "user_id" not in df else df[df["user_id"].isin(keep)].reset_index(drop=True)
        )

    return replace(
        cut,
        users=only(cut.users),
        intent=only(cut.intent),
        candidates=only(cut.candidates),
        history=only(cut.history),
        purchased=only(cut.purchased),
        user_items=only(cut.user_items),
        labels=only(cut.labels),
        window=only(cut.window),
    )


def tf_ranker_train_cuts(frames: dict[str, pd.DataFrame]) -> list[str]:
    """The DIN ranker learns on the first training cut only when there are several (stacking hygiene),
    with its rest-of-session variant when there is one."""
    names = sorted(k for k in frames if k.startswith("train_"))
    names = names[:1] if len(names) > 1 else names
    return names + [f"session_{k}" for k in names if f"session_{k}" in frames]


def reranker_train_cuts(frames: dict[str, pd.DataFrame], cfg: TrainConfig) -> list[str]:
    """Cuts the rerankers fit on (with their rest-of-session variants when built). With the TF stage
    and ≥ 2 training cuts, the cut the DIN ranker saw is left out, so ``tf_score`` is out-of-sample
    for the reranker; with one cut it is in-sample (logged)."""
    names = sorted(k for k in frames if k.startswith("train_"))
    if cfg.use_tf and len(names) > 1:
        names = [k for k in names if k not in tf_ranker_train_cuts(frames)]
    return names + [f"session_{k}" for k in names if f"session_{k}" in frames]


def features_with_tf(
    cuts: dict[str, CutData], cfg: TrainConfig, step: Step, beside: Beside | None = None
) -> tuple[TFStage, dict[str, pd.DataFrame]]:
    """Candidate features of every cut; with ``use_tf`` the two-tower source and the DIN score join them.
    Frames already computed beside the cut builds (``beside``, key ``("features", name)``) are taken."""
    stage = TFStage()
    if not cfg.use_tf:
        done = beside is not None and all(beside.has(("features", name)) for name in cuts)
        step("candidates and features" + (" (computed beside the cut builds)" if done else ""))
        return stage, {
            name: beside.take(("features", name))
            if beside is not None and beside.has(("features", name))
            else build_features(cut)
            for name, cut in cuts.items()
        }
    tfs = TFSettings(**{"token_min_users": cfg.token_min_users, **cfg.tf})
    stage.retrieve_k = tfs.retrieve_k
    step("fit TF two-tower retrieval")
    stage.two_tower = fit_two_tower_stage(cuts["train_0"], tfs)
    stage.fit_seconds["two_tower"] = float(stage.two_tower.fit_seconds)
    step("candidates (+ two-tower) and features")
    frames = {name: build_features(cut, stage.candidates(cut)) for name, cut in cuts.items()}
    step("fit TF DIN ranker")
    train = [(cuts[k], frames[k]) for k in tf_ranker_train_cuts(frames)]
    stage.ranker = fit_ranker_stage(train, (cuts["val"], frames["val"]), tfs)
    stage.fit_seconds["tf_ranker"] = float(stage.ranker.fit_seconds)
    step("TF ranker scores for every cut")
    for name, cut in cuts.items():
        scores = stage.scores(cut, frames[name])
        frames[name] = frames[name].merge(scores, on=["user_id", "item_id"], how="left")
    return stage, frames
