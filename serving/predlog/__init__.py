"""Closing the loop: the prediction log (a real database), outcomes and sales feedback, shared KPIs.

- `db`: the tables, the engine for LEADSCORE_DATABASE_URL (a SQLite file by default) and the
  Alembic migrations that create and upgrade them.
- `writer`: the rows (one per served score) written in batches from a bounded queue by a thread,
  retrying while the database is down; `writer_process` runs it in a process of its own for the API,
  so logging never slows or fails a score request.
- `store`: outcomes, feedback and a lead's history, as plain functions over a connection.
- `kpis`, `monitor`, `export`: what is read back out: the shared KPI report, live model monitoring,
  and the log as a lead table for the next training.
"""
