"""LangChain adapters: a retriever over a memory, and any primitive as a ``Runnable``.

Needs the ``langchain`` extra (``pip install 'tta-dev-primitives[langchain]'``)::

    retriever = memory.as_retriever(k=4)              # a langchain_core BaseRetriever
    docs = await retriever.ainvoke("what does Ada like?")
    docs[0].metadata["score"], docs[0].metadata["key"]

    chain = as_runnable(memory.search_step(limit=3))  # a RunnableLambda (sync and async)
    hits = chain.invoke("python")

Every call runs on the memory's :meth:`~tta_dev_primitives.memory.MemoryPrimitive.sync`
loop thread (an async call awaits it there), so LangChain's sync and async paths, thread
pools and the LangGraph store can share one memory safely.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from typing import Any

from ..core.base import WorkflowPrimitive
from ..core.context import WorkflowContext
from ..memory.primitive import MemoryPrimitive
from ..memory.records import SearchHit
from ..memory.search import SearchMode
from ..memory.sync import LoopThread, SyncMemory
from . import missing_extra

try:
    from langchain_core.callbacks import (
        AsyncCallbackManagerForRetrieverRun,
        CallbackManagerForRetrieverRun,
    )
    from langchain_core.documents import Document
    from langchain_core.retrievers import BaseRetriever
    from langchain_core.runnables import RunnableLambda
    from pydantic import ConfigDict, PrivateAttr
except ImportError as exc:  # pragma: no cover - exercised without the extra installed
    raise missing_extra("langchain-core", "langchain") from exc

__all__ = ["MemoryRetriever", "as_runnable", "hit_to_document"]

_LOOP: LoopThread | None = None
_LOOP_LOCK = threading.Lock()


def _shared_loop() -> LoopThread:
    """The loop thread that runs the sync path of adapters of non-memory primitives."""
    global _LOOP
    with _LOOP_LOCK:
        if _LOOP is None:
            _LOOP = LoopThread("tta-runnable")
        return _LOOP


def hit_to_document(hit: SearchHit) -> Document:
    """A search hit as a LangChain ``Document``.

    ``page_content`` is the value when it is a str, else its JSON; ``metadata`` is the
    record's metadata plus ``key``, ``score`` and ``namespace`` (a list of parts, relative
    to the searched memory); ``id`` is the key.
    """
    value = hit.value
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    metadata = dict(hit.metadata)
    metadata.update(key=hit.key, score=hit.score, namespace=list(hit.namespace))
    return Document(page_content=text, metadata=metadata, id=hit.key)


class MemoryRetriever(BaseRetriever):
    """A LangChain retriever: ``memory.search`` as ``Document``s (sync and async).

    Build it with :meth:`MemoryPrimitive.as_retriever`.

    Attributes:
        memory: The memory searched.
        mode: Search mode (None: the memory's default).
        k: Most documents returned.
        filter: Metadata filter (the filter language of ``memory.list``).
        min_score: Keep only hits scoring at least this (``search(min_score=)``: calibrated
            scores that mean the same in every mode; ``MIN_RELEVANT_SCORE`` of
            :mod:`tta_dev_primitives.memory.search` is the line of "relevant"). None keeps
            every hit.
        subtree: Search the memory's namespace and every namespace below it.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    memory: Any
    mode: SearchMode | None = None
    k: int = 4
    filter: dict[str, Any] | None = None
    min_score: float | None = None
    subtree: bool = False
    _facade: SyncMemory | None = PrivateAttr(default=None)

    @classmethod
    def for_memory(
        cls,
        memory: MemoryPrimitive,
        *,
        mode: SearchMode | None = None,
        k: int = 4,
        filter: Mapping[str, Any] | None = None,
        min_score: float | None = None,
        subtree: bool = False,
    ) -> MemoryRetriever:
        """The retriever of ``memory`` (arguments checked here, before any search).

        Raises:
            TypeError: ``memory`` is not a MemoryPrimitive, a bad argument type.
            ValueError: ``k < 1``, an unknown mode.
        """
        if not isinstance(memory, MemoryPrimitive):
            raise TypeError(f"memory must be a MemoryPrimitive, got {type(memory).__name__}")
        if isinstance(k, bool) or not isinstance(k, int):
            raise TypeError(f"k must be an int, got {type(k).__name__}")
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        if mode is not None and mode not in ("keyword", "semantic", "hybrid"):
            raise ValueError(f"mode must be keyword, semantic, hybrid or None, got {mode!r}")
        if min_score is not None and (
            isinstance(min_score, bool) or not isinstance(min_score, int | float)
        ):
            raise TypeError(f"min_score must be a number or None, got {type(min_score).__name__}")
        if filter is not None and not isinstance(filter, Mapping):
            raise TypeError(f"filter must be a mapping or None, got {type(filter).__name__}")
        if not isinstance(subtree, bool):
            raise TypeError(f"subtree must be True or False, got {type(subtree).__name__}")
        return cls(
            memory=memory,
            mode=mode,
            k=k,
            filter=None if filter is None else dict(filter),
            min_score=None if min_score is None else float(min_score),
            subtree=subtree,
        )

    def _sync(self) -> SyncMemory:
        if self._facade is None:
            self._facade = self.memory.sync()
        return self._facade

    async def _search(self, query: str) -> list[Document]:
        hits = await self.memory.search(
            query,
            limit=self.k,
            mode=self.mode,
            filter=self.filter,
            min_score=self.min_score,
            subtree=self.subtree,
        )
        return [hit_to_document(h) for h in hits]

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        return self._sync().run(self._search(query))

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun
    ) -> list[Document]:
        return await self._sync().arun(self._search(query))


def as_runnable(
    primitive: WorkflowPrimitive[Any, Any], *, name: str | None = None
) -> RunnableLambda[Any, Any]:
    """A workflow primitive (a memory, a step, a pipeline) as a LangChain ``Runnable``.

    ``invoke`` and ``ainvoke`` run ``primitive.execute(input)`` with a fresh
    :class:`WorkflowContext`; so a pipeline becomes a LangChain chain link, or a LangGraph
    node (``graph.add_node("recall", as_runnable(pipeline))``: it gets the state and
    returns the update). A :class:`MemoryPrimitive` takes :class:`MemoryOperation` inputs.

    ``ainvoke`` awaits the primitive; ``invoke`` blocks on a private loop thread: the
    memory's :meth:`~MemoryPrimitive.sync` loop for a memory (``ainvoke`` runs there too),
    one loop thread shared by every other adapter otherwise.

    Raises:
        TypeError: ``primitive`` is not a WorkflowPrimitive.
    """
    if not isinstance(primitive, WorkflowPrimitive):
        raise TypeError(f"as_runnable takes a WorkflowPrimitive, got {type(primitive).__name__}")
    facade = primitive.sync() if isinstance(primitive, MemoryPrimitive) else None

    async def run(input_data: Any) -> Any:
        return await primitive.execute(input_data, WorkflowContext())

    def invoke(input_data: Any) -> Any:
        if facade is not None:
            return facade.run(run(input_data))
        return _shared_loop().submit(run(input_data)).result()

    async def ainvoke(input_data: Any) -> Any:
        if facade is not None:
            return await facade.arun(run(input_data))
        return await run(input_data)

    return RunnableLambda(invoke, afunc=ainvoke, name=name or primitive.name)
