"""The development stack of ``kakin up``: the embedded Temporal and localstripe, the demo."""
