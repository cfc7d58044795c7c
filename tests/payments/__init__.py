"""Payments: Stripe webhooks (signed and real traffic) and the card-update page."""
