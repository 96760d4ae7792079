"""``python -m tta_dev_primitives.cli``: the ``tta-memory`` command."""

from __future__ import annotations

import sys

from .app import main

sys.exit(main())
