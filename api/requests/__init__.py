"""Request bodies, one module per feature: what the API accepts and how it says no.

Amounts are integers in the currency's minor unit; quantities and percentages that
may be fractional are decimal strings ("12.5", "0.015"), never floats. The responses
are the views in ``kakin.views``, shared with the CLI and the console.
"""
