"""Whole stacks as people run them: kakin up, embedded, dev server, benchmark, chaos."""
