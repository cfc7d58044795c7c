"""The fault-injection ("chaos") suite: hundreds of subscriptions renew while everything fails.

``python -m tests.chaos --subscriptions 200 --renewals 3`` starts a private Temporal
dev server, a private PostgreSQL cluster, localstripe behind a fault-injecting proxy
and a SendGrid loopback, runs ``worker.py`` as a process, and while subscriptions
renew on a test clock it SIGKILLs and restarts the worker, makes Stripe time out,
answer 500/429 or drop connections (also after it accepted a charge), stops
PostgreSQL for a few seconds and makes the email endpoint answer 503 for a while.
Then ``invariants.check`` reads the database, Stripe and the email endpoint and
counts the violations of each promise. See README, "Fault injection".
"""
