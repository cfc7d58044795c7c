"""The database: activities against PostgreSQL and SQLite, and the migrations."""
