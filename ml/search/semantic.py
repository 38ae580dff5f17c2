"""Semantic query→item relevance from static word embeddings that ship inside a PyPI wheel.

The model is WordLlama's ``l2_supercat_256``: a 32,000 × 256 token-embedding table distilled from
Llama-2-family models, with its Llama-2 tokenizer, both inside the ``wordllama`` wheel. A text's
vector is the mean of its token vectors, so embedding is a table lookup: no torch, no GPU, and
nothing downloaded at run time. ``WordLlama.load()`` is not used because in 0.4.0.post1 it looks
for ``tokenizer/`` while the wheel ships ``tokenizers/``, then falls back to the Hugging Face hub;
here the two files are opened from the package folder and their absence is an error.

Coverage: the vocabulary is English-centric. Chinese text falls into single characters and UTF-8
byte pieces, so Chinese similarity mostly counts shared characters (手机壳 sits close to 耳机
through 机) rather than meaning; Chinese relevance comes from jieba-segmented BM25 and the learned
query-item co-occurrence instead.

Texts are folded like queries (``ml.search.text.fold_text``: NFKC, lower case, punctuation to
spaces) before embedding, so "Trainers!!" and "trainers" get one vector; a text with no word
characters gets the zero vector (cosine 0 with everything).
"""

from __future__ import annotations

import importlib.metadata
import logging
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ml.search.lexical import item_ids_of, item_text, top_positive
from ml.search.text import fold_text

if TYPE_CHECKING:
    from wordllama.inference import WordLlamaInference

PACKAGE = "wordllama"
TOKENIZER_FILE = Path("tokenizers") / "l2_supercat_tokenizer_config.json"
WEIGHTS_FILE = Path("weights") / "l2_supercat_256.safetensors"
WEIGHTS_TENSOR = "embedding.weight"
#: Texts per tokenizer batch: the batch is padded to its longest text, titles are short.
EMBED_BATCH = 256


class SemanticModelMissing(RuntimeError):
    """The packaged embedding model cannot be found (the pinned wheel is missing or incomplete)."""


def _import_wordllama():
    """Import wordllama without letting it reconfigure logging.

    Its ``__init__`` and ``inference`` modules call ``logging.basicConfig(level=INFO)`` at import,
    which would attach a handler to the root logger of the reader or the Airflow worker.
    """
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        import wordllama
        from wordllama.inference import WordLlamaInference
    except ImportError as exc:
        raise SemanticModelMissing(
            f"package {PACKAGE!r} is not installed: pip install -r requirements.txt (pins {PACKAGE})"
        ) from exc
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    return Path(wordllama.__file__).parent, WordLlamaInference


@lru_cache(maxsize=1)
def load_embedder() -> WordLlamaInference:
    """The packaged model, loaded once per process from the wheel's own files (never downloaded)."""
    package_dir, inference_cls = _import_wordllama()
    missing = [
        str(package_dir / f) for f in (TOKENIZER_FILE, WEIGHTS_FILE) if not (package_dir / f).is_file()
    ]
    if missing:
        version = importlib.metadata.version(PACKAGE)
        raise SemanticModelMissing(
            f"package {PACKAGE}=={version} lacks {missing}: reinstall the pinned wheel "
            f"(pip install --force-reinstall {PACKAGE}=={version}); nothing is downloaded at run time"
        )
    from safetensors import safe_open
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(package_dir / TOKENIZER_FILE))
    with safe_open(str(package_dir / WEIGHTS_FILE), framework="np") as f:
        embedding = f.get_tensor(WEIGHTS_TENSOR)
    return inference_cls(embedding, tokenizer)


def embed(texts: Sequence[str]) -> np.ndarray:
    """float32 rows, L2-normalised, one per text; the zero row for a text without words."""
    model = load_embedder()
    folded = [fold_text(t) for t in texts]
    out = np.zeros((len(folded), model.embedding.shape[1]), dtype=np.float32)
    rows = np.array([i for i, t in enumerate(folded) if t], dtype=np.int64)
    if len(rows) == 0:
        return out
    vectors = model.embed([folded[i] for i in rows], norm=False, batch_size=EMBED_BATCH)
    lengths = np.linalg.norm(vectors, axis=1)
    ok = lengths > 0
    out[rows[ok]] = vectors[ok] / lengths[ok, None]
    return out


class SemanticIndex:
    """Item vectors of a catalogue; ``scores`` is the cosine to a query, aligned with ``item_ids``."""

    def __init__(self, item_ids: np.ndarray, vectors: np.ndarray) -> None:
        self.item_ids = item_ids
        self.vectors = vectors
        self._queries: dict[str, np.ndarray] = {}  # the vectors of the last prepare()'s queries

    @classmethod
    def build(cls, items: pd.DataFrame) -> SemanticIndex:
        """Embed every item's "title category brand" text (``lexical.item_text``)."""
        return cls(item_ids_of(items), embed(item_text(items).tolist()))

    def __len__(self) -> int:
        return len(self.item_ids)

    def prepare(self, queries: Sequence[str]) -> None:
        """Embed ``queries`` in one batch for the :meth:`scores` calls that follow (a refresh batch
        scores thousands of distinct queries: one ``embed`` call each cost 5x the batch). The
        vectors are the ones ``embed([query])`` gives, bit for bit; only the last set is kept, and a
        query outside it (another thread's prepare() may have replaced it) is embedded on its own."""
        asked = list(dict.fromkeys(queries))
        self._queries = dict(zip(asked, embed(asked))) if asked else {}

    def scores(self, query: str) -> np.ndarray:
        """float32 cosine of the query to every item (0 for an empty query or an item without text)."""
        vector = self._queries.get(query)
        return self.vectors @ (vector if vector is not None else embed([query])[0])

    def top(self, query: str, k: int) -> list[tuple[int, float]]:
        """The ``k`` items with the highest positive cosine, ties by the smaller item_id."""
        return top_positive(self.item_ids, self.scores(query), k)
