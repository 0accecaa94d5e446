"""The services layer: the pure pipeline logic of :mod:`cdb.domain.services` wired to streams.

May import the runtime, the event store and the domain; never the CLI or the projections.
"""
