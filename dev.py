#!/usr/bin/env python3
"""The two commands a new machine needs; only Python 3.11+ must already be there.

    python3 dev.py up     # install what is missing, then run kakin on its embedded default
    python3 dev.py test   # install what is missing, then ruff, mypy, lint-imports, pytest

Everything Python goes into ./.venv (created on first use). ``test`` also needs a
headless Chromium for the browser tests: ``chromium`` on PATH (or the one named by
KAKIN_CHROMIUM), else Debian's package, installed with apt-get when run as root.
Extra arguments are passed on: ``python3 dev.py up --no-demo``,
``python3 dev.py test -k renewals``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
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


# Debian's packages the browser tests need: the browser, and a font with Japanese glyphs
# (without one the Japanese pages' screenshots show boxes; the tests pass either way).
CHROMIUM_PACKAGE = "chromium"
JAPANESE_FONT_PACKAGE = "fonts-noto-cjk"
HOW_TO_INSTALL_CHROMIUM = (
    "the browser tests need Chromium: run `sudo apt-get install chromium` (Debian/Ubuntu), "
    "or install any Chromium and set KAKIN_CHROMIUM to its path"
)


def _can_apt_install() -> bool:
    return os.name == "posix" and os.geteuid() == 0 and shutil.which("apt-get") is not None


def _has_japanese_font() -> bool:
    if shutil.which("fc-list") is None:  # no fontconfig yet: it comes with Chromium's package
        return False
    found = subprocess.run(["fc-list", ":lang=ja"], capture_output=True, text=True, check=False)
    return bool(found.stdout.strip())


def _apt_install(packages: list[str]) -> None:
    print(f"installing {' '.join(packages)} with apt-get (first run only) ...", flush=True)
    # No questions (CI has no standard input); no recommends: a browser, not a desktop.
    env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
    # Wait for another apt run's lock rather than fail at once.
    apt = ["apt-get", "-q", "-o", "Dpkg::Use-Pty=0", "-o", "DPkg::Lock::Timeout=300"]
    for step in (["update"], ["install", "-y", "--no-install-recommends", *packages]):
        if subprocess.run([*apt, *step], env=env, stdin=subprocess.DEVNULL).returncode != 0:
            sys.exit(f"`apt-get {step[0]}` failed (see above); {HOW_TO_INSTALL_CHROMIUM}")


def ensure_chromium() -> str:
    """The path of a Chromium for the browser tests, installed first when it is missing."""
    named = os.environ.get("KAKIN_CHROMIUM")
    found = shutil.which(named or "chromium")
    if named and found is None:
        sys.exit(f"KAKIN_CHROMIUM={named} is not an executable; {HOW_TO_INSTALL_CHROMIUM}")
    missing = [CHROMIUM_PACKAGE] if found is None else []
    if not _has_japanese_font():
        missing.append(JAPANESE_FONT_PACKAGE)
    if missing and _can_apt_install():
        _apt_install(missing)
        found = found or shutil.which("chromium")
    if found is None:
        sys.exit(HOW_TO_INSTALL_CHROMIUM)
    if not _has_japanese_font():
        print(
            "note: no Japanese font, so Japanese pages' screenshots show boxes "
            f"(apt-get install {JAPANESE_FONT_PACKAGE})",
            file=sys.stderr,
        )
    return found


def run(*command: str) -> int:
    print(f"$ {' '.join(command)}", flush=True)
    return subprocess.run([str(BIN / command[0]), *command[1:]], cwd=ROOT).returncode


def test(extra: list[str]) -> int:
    # Before anything else: a machine that cannot get a browser stops here, in one line,
    # rather than failing every browser test. The tests find it through KAKIN_CHROMIUM.
    os.environ["KAKIN_CHROMIUM"] = ensure_chromium()
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
