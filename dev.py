#!/usr/bin/env python3
"""The two commands a new machine needs; only Python 3.11+ must already be there.

    python3 dev.py up     # install what is missing, then run kakin on its embedded default
    python3 dev.py test   # install what is missing, then ruff, mypy, lint-imports, pytest

Everything goes into ./.venv (created on first use). Extra arguments are passed on:
``python3 dev.py up --no-demo``, ``python3 dev.py test -k renewals``.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".kakin-install-stamp"


def _fingerprint() -> str:
    # Reinstall whenever the dependencies change.
    return hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()


def ensure_environment() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 -- this file runs before any venv exists
        sys.exit(f"kakin needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    if not (BIN / "python").exists():
        print("creating .venv ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    if STAMP.exists() and STAMP.read_text() == _fingerprint():
        return
    print("installing kakin and its tools into .venv (first run only) ...", flush=True)
    pip = [str(BIN / "python"), "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "install", "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "install", "-e", f"{ROOT}[dev]"], check=True)
    STAMP.write_text(_fingerprint())


def run(*command: str) -> int:
    print(f"$ {' '.join(command)}", flush=True)
    return subprocess.run([str(BIN / command[0]), *command[1:]], cwd=ROOT).returncode


def test(extra: list[str]) -> int:
    failed = [
        name
        for name, code in (
            ("ruff check", run("ruff", "check", ".")),
            ("ruff format", run("ruff", "format", "--check", ".")),
            ("mypy", run("mypy")),
            # The layers and their import direction (pyproject.toml, docs/architecture.md).
            ("lint-imports", run("lint-imports")),
        )
        if code != 0
    ]
    # pytest last, so its summary is the last thing printed.
    code = run("pytest", *extra)
    if failed:
        print(f"style checks failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return code


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in ("up", "test"):
        print(__doc__, file=sys.stderr)
        return 2
    command, extra = sys.argv[1], sys.argv[2:]
    ensure_environment()
    if command == "test":
        return test(extra)
    os.execv(str(BIN / "kakin"), [str(BIN / "kakin"), "up", *extra])
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
