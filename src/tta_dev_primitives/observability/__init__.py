"""Observability: attribute-name constants and SDK set-up helpers for users and examples."""

from __future__ import annotations

from . import attributes
from .setup import ExporterName, setup_metrics, setup_tracing

__all__ = ["ExporterName", "attributes", "setup_metrics", "setup_tracing"]
