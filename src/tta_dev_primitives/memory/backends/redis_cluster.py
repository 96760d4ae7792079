"""The old import path of :mod:`.redis.cluster`, kept working."""

from __future__ import annotations

from .redis.cluster import (
    CLUSTER_SCHEMES,
    cluster_client,
    is_redirection,
    run_redirected,
)

__all__ = [
    "CLUSTER_SCHEMES",
    "cluster_client",
    "is_redirection",
    "run_redirected",
]
