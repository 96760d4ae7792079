"""Observability: attribute-name constants and SDK set-up helpers for users and examples."""

from __future__ import annotations

from . import attributes

__all__ = ["attributes"]
