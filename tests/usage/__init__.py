"""Usage: ingestion, the batch endpoint, metered billing end to end."""
