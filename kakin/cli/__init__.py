"""The ``kakin`` command, one module per feature area (``kakin = "kakin.cli:main"``)."""

from kakin.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
