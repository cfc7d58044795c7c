"""The HTTP API: resources, errors, idempotency, limits, keys, audit log, process, fuzzing."""
