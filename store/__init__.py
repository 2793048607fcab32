"""Persistence: maps domain types to database tables."""
