"""``tta-memory``: look into a memory store, and take records out and put them back.

Usage::

    tta-memory --url redis://localhost:6379 --namespace app/users stats
    tta-memory ls --filter '{"role": "user"}' --limit 20
    tta-memory get turn:1
    tta-memory search "python" --limit 5 --json
    tta-memory rm turn:1            # or: rm --where '{"session": "s1"}' [--dry-run] [--yes]
    tta-memory export backup.jsonl  # JSON Lines, see tta_dev_primitives.memory.transfer
    tta-memory import backup.jsonl --on-conflict skip
    tta-memory --namespace / namespaces
    tta-memory mcp --url redis://localhost:6379  # an MCP server (the mcp extra)

Without ``--url`` the URL comes from ``TTA_MEMORY_URL``. Output is a table for people and
JSON with ``--json``. Exit codes: 0 ok, 1 not found (no such key, no hit, an empty
namespace, nothing deleted), 2 usage (bad arguments or input), 3 backend unreachable or
failing. Errors and warnings are one line each on stderr. Standard library only.
"""

from __future__ import annotations

from .app import main
from .args import build_parser as build_parser  # tests and scripts build the parser

# The modules: args.py (the parser, exit codes), output.py (tables, progress, files),
# browse.py and change.py (the commands), app.py (the entry point).

__all__ = ["main"]
