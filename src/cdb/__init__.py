"""cdb: an event-sourced crypto paper-trading backbone on Redis Streams."""

__version__ = "0.1.0"
