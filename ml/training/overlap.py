"""What a training run computes beside its point-in-time builds (on :class:`~ml.training.beside.Beside`'s
thread), queued by the ``ready`` hook (:class:`BesideBuilds`) of :func:`~ml.training.cuts.load_cuts` as each cut is read:

- every searched cut's search rows (``train_*``, ``val``, ``test``, when its label window holds a search;
  key ``("search", name)``);
- without the TF stage (its candidates need the two-tower model fitted on the cuts first), every cut's
  candidate features (``("features", name)``, on the cut as :func:`~ml.training.cuts.sampled` gives it).

The rankers' fits stay after the builds: LightGBM keeps both cores busy, so fitted beside the test
cut's builds it slowed them as much as it saved (measured, docs/scaling.md "2026-12-05").

The jobs are the functions the pipeline would call after the builds, on the same frames (in the same
order: one thread, first in first out), so the frames and models are the same; the pipeline takes each
result where it used to compute it. Nothing here calls the run's ``step`` (its stage clock belongs to
the main thread); the jobs' own time is ``Beside.seconds``, logged as ``beside_builds_seconds``.
"""

from __future__ import annotations

from ml.features.candidates import build_features
from ml.features.datasets import CutData
from ml.search.cut_rows import search_indexes, search_set
from ml.search.dataset import SearchSet
from ml.training.beside import Beside
from ml.training.config import TrainConfig
from ml.training.cuts import sampled


def _has_searches(cut: CutData) -> bool:
    """Whether the cut's label window holds a search: the public logs have none, and their search rows
    (and the catalogue's search indexes) would be computed for nothing."""
    w = cut.window
    return w is not None and not w.empty and bool((w["behavior_type"] == "search").any())


class BesideBuilds:
    """The ``ready(name, cut)`` hook of ``load_cuts`` that queues the run's work on ``beside``, and the
    cuts it sampled for the feature jobs (:meth:`learning_cut`: the pipeline samples each cut once)."""

    def __init__(self, beside: Beside, cfg: TrainConfig) -> None:
        self.beside, self.cfg = beside, cfg
        self._sampled: dict[str, CutData] = {}
        self._indexes: list = []  # the catalogue's search indexes, built by the first search job

    def _search_rows(self, name: str, cut: CutData) -> SearchSet:
        if not self._indexes:
            self._indexes.append(search_indexes(cut.items))
        return search_set(cut, name, self._indexes[0], self.cfg.search_k)

    def __call__(self, name: str, cut: CutData) -> None:
        if self.cfg.search and not name.startswith("session_") and _has_searches(cut):
            self.beside.submit(("search", name), self._search_rows, name, cut)
        if not self.cfg.use_tf:
            self._sampled[name] = sampled(name, cut, self.cfg)
            self.beside.submit(("features", name), build_features, self._sampled[name])

    def learning_cut(self, name: str, cut: CutData) -> CutData:
        """``sampled(name, cut)``: the copy the feature job got when there was one."""
        return self._sampled[name] if name in self._sampled else sampled(name, cut, self.cfg)
