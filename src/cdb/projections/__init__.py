"""PostgreSQL read models built from the streams (DESIGN §7).

- :mod:`.models` + ``alembic/``: every table (Alembic owns the schema; the models mirror it).
- ``projections/<name>.v<N>.toml`` (:mod:`.definitions`): per projection its topics, event
  types, tables and the SQL of each op. :mod:`.mapping` turns events into rows (pure),
  :mod:`.decode` reads entries, :mod:`.apply` writes one batch (rows, dead letters, checkpoint).
- :mod:`.engine`: the live projector (own consumer group, ack after commit, backoff).
- :mod:`.rebuild`: blue/green rebuild and verify; :mod:`.shadow` the shadow schemas;
  :mod:`.digest` the row digest; :mod:`.status` what `cdb projections status` shows.
"""
