"""Business rules applied after ranking, before anything is evaluated or published.

In order: drop items not in the catalogue and duplicates; in-stock only; no already-purchased
item unless its category is a repeat-buy category; at most ``ceil(max_category_share · n)`` items
per category (diversity); then backfill from the user's intent-category popularity and global
popularity (under the same rules) so every user gets exactly ``n`` items whenever the catalogue
allows it. Removals are counted per reason in :class:`RuleStats`, never silent.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import pandas as pd

from ml.contracts import TOPN_COLUMNS

REC_COLUMNS = list(TOPN_COLUMNS)


@dataclass(frozen=True)
class RuleConfig:
    """Configurable rules (defaults keep room for a strong intent: 7 of a top-10 may share a category)."""

    max_category_share: float = 0.7
    repeat_buy_categories: tuple[int, ...] = ()
    in_stock_only: bool = True
    exclude_purchased: bool = True  # drop items the user bought (outside repeat-buy categories)

    def cap(self, n: int) -> int:
        if not 0 < self.max_category_share <= 1:
            raise ValueError(f"max_category_share must be in (0, 1], got {self.max_category_share}")
        return max(1, math.ceil(self.max_category_share * n))


@dataclass
class RuleStats:
    """How many ranked rows each rule removed and how many slots were backfilled."""

    removed: dict[str, int] = field(default_factory=dict)
    backfilled: int = 0
    short_users: int = 0  # users left with fewer than n items (catalogue too small)

    def as_metrics(self, prefix: str = "rules_") -> dict[str, float]:
        out = {f"{prefix}removed_{k}": float(v) for k, v in self.removed.items()}
        out[f"{prefix}backfilled"] = float(self.backfilled)
        out[f"{prefix}short_users"] = float(self.short_users)
        return out


@dataclass
class Backfill:
    """Popularity lists the rules fill from: per category and global (item ids, best first)."""

    by_category: Mapping[int, Sequence[int]]
    global_items: Sequence[int]
    user_intent: Mapping[int, int]

    @classmethod
    def from_popularity(
        cls, pop: pd.Series, items: pd.DataFrame, user_intent: Mapping[int, int], depth: int = 200
    ) -> Backfill:
        """From item → score popularity; catalogue items never seen follow in id order, so lists are complete."""
        ranked = list(pop.index.astype("int64"))
        seen = set(ranked)
        ranked += [int(i) for i in sorted(items["item_id"].astype("int64")) if int(i) not in seen]
        cat = dict(zip(items["item_id"].astype("int64"), items["category_id"].astype("int64")))
        by_cat: dict[int, list[int]] = {}
        for i in ranked:
            c = cat.get(i)
            if c is not None and len(by_cat.setdefault(c, [])) < depth:
                by_cat[c].append(i)
        return cls(by_category=by_cat, global_items=ranked, user_intent=dict(user_intent))


def _order(ranked: pd.DataFrame) -> pd.DataFrame:
    key = ["user_id", "rank"] if "rank" in ranked.columns else ["user_id", "score"]
    asc = [True, True] if "rank" in ranked.columns else [True, False]
    return ranked.sort_values(key, ascending=asc, kind="stable")


def _count(stats: RuleStats, reason: str, before: int, after: int) -> None:
    stats.removed[reason] = stats.removed.get(reason, 0) + (before - after)


def filter_ranked(
    ranked: pd.DataFrame,
    items: pd.DataFrame,
    purchased: pd.DataFrame,
    cfg: RuleConfig,
    n: int,
    stats: RuleStats,
) -> pd.DataFrame:
    """The vectorised part: catalogue, duplicates, stock, purchased, category cap, then top n."""
    df = _order(ranked)[["user_id", "item_id", "score", "source"]].copy()
    df["item_id"] = df["item_id"].astype("int64")
    df["user_id"] = df["user_id"].astype("int64")
    cat = items[["item_id", "category_id", "in_stock"]].astype({"item_id": "int64"})
    before = len(df)
    df = df.merge(cat, on="item_id", how="inner")
    _count(stats, "not_in_catalogue", before, len(df))
    before = len(df)
    df = df.drop_duplicates(["user_id", "item_id"], keep="first")
    _count(stats, "duplicate", before, len(df))
    if cfg.in_stock_only:
        before = len(df)
        df = df[df["in_stock"].astype(int) == 1]
        _count(stats, "out_of_stock", before, len(df))
    if cfg.exclude_purchased and not purchased.empty:
        bought = purchased[["user_id", "item_id"]].astype("int64").drop_duplicates().assign(_bought=1)
        df = df.merge(bought, on=["user_id", "item_id"], how="left")
        drop = df["_bought"].eq(1) & ~df["category_id"].isin(cfg.repeat_buy_categories)
        _count(stats, "purchased", len(df), len(df) - int(drop.sum()))
        df = df[~drop].drop(columns="_bought")
    before = len(df)
    df = df[df.groupby(["user_id", "category_id"], sort=False).cumcount() < cfg.cap(n)]
    _count(stats, "category_cap", before, len(df))
    return df.groupby("user_id", sort=False).head(n)


def apply_rules(
    ranked: pd.DataFrame,
    user_ids: Iterable[int],
    n: int,
    items: pd.DataFrame,
    purchased: pd.DataFrame,
    backfill: Backfill,
    cfg: RuleConfig = RuleConfig(),
) -> tuple[pd.DataFrame, RuleStats]:
    """Exactly ``n`` rule-abiding rows per requested user (fewer only if the catalogue runs out)."""
    stats = RuleStats()
    kept = filter_ranked(ranked, items, purchased, cfg, n, stats)
    users = list(dict.fromkeys(int(u) for u in user_ids))
    kept = kept[kept["user_id"].isin(users)]
    counts = kept.groupby("user_id").size()
    short = [u for u in users if counts.get(u, 0) < n]
    extra = _backfill_rows(short, kept, n, items, purchased, backfill, cfg) if short else pd.DataFrame()
    if not extra.empty:  # backfill ranks below the user's ranked rows: scores keep falling with rank
        floor = kept.groupby("user_id")["score"].min().reindex(extra["user_id"]).fillna(0.0).clip(upper=0.0)
        extra["score"] = floor.to_numpy() - 1.0 - extra.groupby("user_id", sort=False).cumcount().to_numpy()
    stats.backfilled = len(extra)
    out = pd.concat([kept[["user_id", "item_id", "score", "source"]], extra], ignore_index=True)
    order = {u: i for i, u in enumerate(users)}
    out["_u"] = out["user_id"].map(order)
    out = out.sort_values("_u", kind="stable").drop(columns="_u")
    out["rank"] = out.groupby("user_id", sort=False).cumcount() + 1
    sizes = out.groupby("user_id").size()
    stats.short_users = int(sum(1 for u in users if sizes.get(u, 0) < n))
    return out[REC_COLUMNS].reset_index(drop=True), stats


def _backfill_rows(
    short: list[int],
    kept: pd.DataFrame,
    n: int,
    items: pd.DataFrame,
    purchased: pd.DataFrame,
    backfill: Backfill,
    cfg: RuleConfig,
) -> pd.DataFrame:
    """Fill short users from their intent category, then global popularity; the cap is relaxed last."""
    cat = dict(zip(items["item_id"].astype("int64"), items["category_id"].astype("int64")))
    stock = dict(zip(items["item_id"].astype("int64"), items["in_stock"].astype(int)))
    repeat_ok = set(cfg.repeat_buy_categories)
    bought: dict[int, set[int]] = {}
    if cfg.exclude_purchased and not purchased.empty:
        sub = purchased[purchased["user_id"].isin(short)]
        for u, i in zip(sub["user_id"].astype("int64"), sub["item_id"].astype("int64")):
            bought.setdefault(int(u), set()).add(int(i))
    have = {int(u): list(g) for u, g in kept[kept["user_id"].isin(short)].groupby("user_id")["item_id"]}
    cap = cfg.cap(n)
    rows = []
    for u in short:
        chosen = have.get(u, [])
        seen = set(chosen)
        per_cat: dict[int, int] = {}
        for i in chosen:
            per_cat[cat[i]] = per_cat.get(cat[i], 0) + 1
        intent = backfill.user_intent.get(u)
        pools = [
            ("backfill_intent", backfill.by_category.get(intent, ()) if intent is not None else ()),
            ("backfill_popular", backfill.global_items),
        ]
        for enforce_cap in (True, False):
            for source, pool in pools:
                for i in pool:
                    if len(seen) >= n:
                        break
                    c = cat.get(i)
                    if i in seen or c is None or (cfg.in_stock_only and stock.get(i, 0) != 1):
                        continue
                    if i in bought.get(u, ()) and c not in repeat_ok:
                        continue
                    if enforce_cap and per_cat.get(c, 0) >= cap:
                        continue
                    seen.add(i)
                    per_cat[c] = per_cat.get(c, 0) + 1
                    rows.append((u, i, 0.0, source))
    return pd.DataFrame(rows, columns=["user_id", "item_id", "score", "source"])


class RuledRecommender:
    """Any recommender with the business rules applied to its (deeper) list, so every model and
    baseline is evaluated exactly as it would be served."""

    def __init__(
        self,
        inner,
        items: pd.DataFrame,
        purchased: pd.DataFrame,
        backfill: Backfill,
        cfg: RuleConfig = RuleConfig(),
        depth: int = 3,
    ) -> None:
        self.inner = inner
        self.name = getattr(inner, "name", type(inner).__name__)
        self.items = items
        self.purchased = purchased
        self.backfill = backfill
        self.cfg = cfg
        self.depth = depth
        self.last_stats = RuleStats()

    @property
    def rules(self) -> RuleConfig:
        """The business rules applied (the same attribute as a two-stage recommender's)."""
        return self.cfg

    def recommend(self, user_ids: list[int], n: int) -> pd.DataFrame:
        raw = self.inner.recommend(user_ids, n * self.depth)
        out, self.last_stats = apply_rules(
            raw, user_ids, n, self.items, self.purchased, self.backfill, self.cfg
        )
        return out
