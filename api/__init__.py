"""The HTTP API for services and support: ``create_app`` builds it, ``kakin api`` runs it."""
