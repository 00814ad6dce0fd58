"""Alembic's environment: run by ``ledger.migrate`` (a connection passed in, under the migration lock)
or by the ``alembic`` command with ``-c ledger/migrations/alembic.ini`` (the database from SHULIAN_DB)."""

from __future__ import annotations

from alembic import context

from ledger.migrate import run_environment

run_environment(context)
