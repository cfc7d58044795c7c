"""Invoices: issuing, Japanese invoices, PDFs, templates, API shape, Stripe currency rules."""
