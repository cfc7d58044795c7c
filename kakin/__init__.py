"""kakin (課金): subscription billing on durable Temporal workflows."""

__version__ = "0.1.0"
