"""Tables, repositories, the session factory and the payloads workflows carry.

Keep this file empty of imports: workflows import ``models.payloads`` through the
sandbox and must not drag SQLAlchemy in with it.
"""
