"""Adapters to agent frameworks, each behind an extra and imported only when used.

* :mod:`tta_dev_primitives.integrations.langgraph`: ``MemoryStore``, a LangGraph
  ``BaseStore`` (``pip install 'tta-dev-primitives[langgraph]'``).
* :mod:`tta_dev_primitives.integrations.langchain`: ``MemoryRetriever`` (a LangChain
  ``BaseRetriever``) and ``as_runnable`` (``pip install 'tta-dev-primitives[langchain]'``).
* :mod:`tta_dev_primitives.integrations.mcp`: the MCP server of ``tta-memory mcp``
  (``pip install 'tta-dev-primitives[mcp]'``).

``import tta_dev_primitives`` imports none of them (nor their frameworks).
"""

from __future__ import annotations

__all__: list[str] = []


def missing_extra(package: str, extra: str) -> ImportError:
    """The ImportError for a framework that is not installed, naming the extra to install."""
    return ImportError(f"{package} is not installed: pip install 'tta-dev-primitives[{extra}]'")
