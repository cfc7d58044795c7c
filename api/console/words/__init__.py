"""The console's words, one module per part: each holds ``WORDS = {"en": {...}, "ja": {...}}``."""
