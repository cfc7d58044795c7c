"""Pure billing domain: money, calendar periods, pricing and dunning policy.

Nothing in this package does I/O, reads a clock or imports a framework, so the
workflow sandbox can import it and property tests can hammer it.
"""
