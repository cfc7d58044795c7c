"""Revenue analytics computed from the billing ledger (pure: no I/O, no clock).

Every function takes the ledger entries and the moments it needs; nothing reads
"now". The definitions of every figure are in docs/metrics.md.
"""
