"""The SQL kakin runs, one module per feature, one function per question.

Callers own the session and commit. ``common`` holds what every feature shares (ids,
lookups by id, pages of a list, the errors); the other modules are named by what they
read and write. Nothing outside ``models/repositories`` builds a query.
"""
