"""Embedders turn text into vectors for semantic and hybrid search.

Any object with an ``async embed(texts) -> list of vectors`` method is an :class:`Embedder`.
Two ship with the library:

* :class:`HashingEmbedder`: stdlib only, deterministic, no model and no API key. It hashes
  words and character trigrams into a fixed-size vector, so it finds records that share
  words or word fragments (typos, inflections); it does not know synonyms.
* :class:`SentenceTransformerEmbedder`: wraps a ``sentence-transformers`` model (install the
  ``embeddings`` extra) for real semantic similarity.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import re
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

__all__ = ["Embedder", "HashingEmbedder", "SentenceTransformerEmbedder"]

_WORD = re.compile(r"\w+")


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into embedding vectors (one per text, all of one length)."""

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Embed ``texts``; returns one vector per text."""
        ...


class HashingEmbedder:
    """A deterministic feature-hashing embedder (stdlib only, no model, no network).

    Each word adds weight 1.0 and each of its character trigrams (with word boundaries)
    weight 0.5 to a bucket chosen by a stable hash, with a hashed sign; vectors are unit
    length. Similar spellings land close together, which makes it a useful zero-setup
    default for hybrid search and a stand-in model in tests.

    Args:
        dimensions: Vector length (>= 8).
    """

    def __init__(self, dimensions: int = 256) -> None:
        if isinstance(dimensions, bool) or not isinstance(dimensions, int):
            raise TypeError("dimensions must be an int")
        if dimensions < 8:
            raise ValueError("dimensions must be >= 8")
        self.dimensions = dimensions

    def _features(self, text: str) -> list[tuple[str, float]]:
        feats: list[tuple[str, float]] = []
        for word in _WORD.findall(text.lower()):
            feats.append(("w:" + word, 1.0))
            padded = f"<{word}>"
            feats.extend(("g:" + padded[i : i + 3], 0.5) for i in range(len(padded) - 2))
        return feats

    def embed_one(self, text: str) -> list[float]:
        """Embed one text synchronously."""
        vec = [0.0] * self.dimensions
        for feat, weight in self._features(text):
            digest = hashlib.blake2b(feat.encode("utf-8", "surrogatepass"), digest_size=8).digest()
            n = int.from_bytes(digest, "little")
            vec[n % self.dimensions] += weight if (n >> 63) & 1 else -weight
        norm = math.sqrt(math.fsum(x * x for x in vec))
        return [x / norm for x in vec] if norm else vec

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return [self.embed_one(text) for text in texts]


class SentenceTransformerEmbedder:
    """Embeds with a ``sentence-transformers`` model (the ``embeddings`` extra).

    Model inference is CPU/GPU-bound work, not I/O, so it runs in a worker thread to keep the
    event loop responsive; storage operations never use threads.

    Args:
        model: A loaded ``SentenceTransformer`` or a model name/path to load.
        batch_size: Texts per encode call.
    """

    def __init__(self, model: Any = "all-MiniLM-L6-v2", *, batch_size: int = 32) -> None:
        if isinstance(model, str):
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError as exc:
                raise ImportError(
                    "SentenceTransformerEmbedder needs sentence-transformers: "
                    "pip install 'tta-dev-primitives[embeddings]'"
                ) from exc
            model = SentenceTransformer(model)
        self.model = model
        self.batch_size = batch_size

    def _encode(self, texts: list[str]) -> list[list[float]]:
        vectors = self.model.encode(texts, batch_size=self.batch_size, normalize_embeddings=True)
        return [[float(x) for x in row] for row in vectors]

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return await asyncio.to_thread(self._encode, list(texts))
