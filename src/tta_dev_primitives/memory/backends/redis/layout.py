"""Key names: where a namespace's keys live in Redis (``prefix:{tag}:...``).

A namespace's keys share the base ``<prefix>:{<tag>}:`` (one hash slot on a Redis Cluster):
``h:<key>`` the records, ``lru``, ``ttl``, ``st`` and ``log`` its index keys (described in
:mod:`~tta_dev_primitives.memory.backends.redis.scripts`), ``idx`` its Query Engine index.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import TYPE_CHECKING

from ...records import Namespace

if TYPE_CHECKING:
    from .scripts import Script

__all__ = ["NamespaceKeys", "namespace_glob", "namespace_tag", "untag"]


def _escape_part(part: str) -> str:
    # "%" first, so the escapes themselves stay unambiguous; ":" separates parts; braces
    # would end (or start) the hash tag. An empty part becomes a lone "%", which no escaped
    # text can be (every other "%" is followed by two hex digits).
    escaped = part.replace("%", "%25").replace(":", "%3A").replace("{", "%7B").replace("}", "%7D")
    return escaped or "%"


@lru_cache(maxsize=1024)
def namespace_tag(namespace: Namespace) -> str:
    """The hash tag of ``namespace``: its parts escaped and joined by ``":"``.

    Injective (``("a", "b")`` -> ``a:b``, ``("a:b",)`` -> ``a%3Ab``), never empty and never
    holding a brace, so ``{tag}`` always is the whole hash tag.
    """
    if not namespace:
        return "%%"
    return ":".join(_escape_part(p) for p in namespace)


def untag(tag: str) -> Namespace:
    """The namespace of a :func:`namespace_tag` (its inverse)."""
    if tag == "%%":
        return ()
    parts = []
    for part in tag.split(":"):
        if part == "%":
            parts.append("")
        else:
            text = part.replace("%3A", ":").replace("%7B", "{").replace("%7D", "}")
            parts.append(text.replace("%25", "%"))
    return tuple(parts)


def namespace_glob(prefix: str) -> str:
    """The ``SCAN`` pattern of every namespace's ``lru`` key under ``prefix`` (glob-escaped)."""
    return re.sub(r"([*?\[\]\\])", r"\\\1", prefix) + ":{*}:lru"


class NamespaceKeys:
    """The keys of one namespace: its base, record-key prefix and each script's declared keys.

    Attributes:
        base: ``<prefix>:{<tag>}:``, the start of every key of the namespace.
        rec: ``base + "h:"``, the start of every record key.
    """

    __slots__ = ("_declared", "base", "rec")

    def __init__(self, base: bytes) -> None:
        self.base = base
        self.rec = base + b"h:"
        self._declared: dict[str, tuple[bytes, ...]] = {}

    @classmethod
    def of(cls, prefix: str, namespace: Namespace) -> NamespaceKeys:
        """The keys of ``namespace`` under ``prefix``."""
        return cls(f"{prefix}:{{{namespace_tag(namespace)}}}:".encode("utf-8", "surrogatepass"))

    @property
    def stats(self) -> bytes:
        """The namespace's ``st`` hash (counter, incarnation, embedder)."""
        return self.base + b"st"

    @property
    def lru(self) -> bytes:
        """The namespace's ``lru`` zset (one member per live record)."""
        return self.base + b"lru"

    @property
    def ft_index(self) -> bytes:
        """The name of the namespace's Query Engine index."""
        return self.base + b"idx"

    def declared(self, script: Script) -> tuple[bytes, ...]:
        """The keys ``script`` declares first in ``KEYS`` for this namespace."""
        keys = self._declared.get(script.name)
        if keys is None:
            keys = self._declared[script.name] = tuple(self.base + k for k in script.keys)
        return keys
