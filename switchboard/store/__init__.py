"""PostgreSQL storage: migrations, the event writer (with its disk spool),
care-center reports and retention.

Public entry points:

* ``migrate.apply_migrations`` / ``migrate.current_level`` / ``seed.seed_demo``
* ``writer.EventWriter`` (start/stop/submit, counters)
* ``reports.fetch_report`` / ``reports.fetch_ivr_dropoff`` + formatters
* ``retention.purge_records`` / ``retention.purge_recordings``
* ``agents.upsert_agent`` / ``agents.import_agents`` / ``agents.load_agents`` / ``agents.log_agent_states``
* ``calls_query`` (the API's reads of call records) and the other read modules beside it:
  every SQL statement of the service lives in this package
"""

from switchboard.store.errors import MigrationError, StoreError, WriterOverloaded

__all__ = ["MigrationError", "StoreError", "WriterOverloaded"]
