"""Where the repository's files are, for tests that read docs, examples or pyproject.toml."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
"""The repository root (the folder holding ``pyproject.toml``)."""
