"""Feature services: the only way any face (HTTP API, CLI, console, dev stack) reads or
writes a feature. Each takes its session (or session factory) explicitly and raises the
typed errors of ``kakin.services.errors``."""
