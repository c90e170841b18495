"""Peer benchmarks: stepwise side by side with other durable-workflow engines, on one Postgres.

``python -m bench`` (``make bench``) runs every suite and writes ``bench/results.json``. The
figures are reported, never asserted: tests do not time things. Modules here import only the
standard library at top level, because the Python peer's runner imports this package from a
virtualenv that has neither stepwise's dependencies nor asyncpg.
"""
