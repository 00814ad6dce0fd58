"""Alembic migrations of the Shulian database (both engines); run them through ``ledger.migrate``."""
