"""The instruction count of a Python child process under callgrind, for the scripts here.

Instruction counts do not depend on what else the machine runs, so they compare two
versions of the library on a busy machine.
"""

from __future__ import annotations

import re
import subprocess
import sys

VALGRIND = ("valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null")


def instructions(*argv: str) -> int:
    """Instructions callgrind counts for ``python argv...`` (a script and its arguments)."""
    done = subprocess.run(
        [*VALGRIND, sys.executable, *argv], capture_output=True, text=True, check=True
    )
    found = re.search(r"Collected : (\d+)", done.stderr)
    if found is None:
        raise RuntimeError(done.stderr[-2000:])
    return int(found.group(1))
