"""Every side effect of the billing pipeline: database, Stripe, email, templates, files."""
