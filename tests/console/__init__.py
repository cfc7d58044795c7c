"""The staff console: staff accounts, sign-in with two-factor, sessions, CSRF, roles."""
