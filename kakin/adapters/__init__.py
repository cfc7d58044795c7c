"""Adapters to the outside: Stripe, email, templates, PDF and signed links."""
