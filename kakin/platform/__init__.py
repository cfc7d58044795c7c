"""Configuration and the payload codec: what every layer above reads."""
