"""The domain: events, contracts, aggregates and pure service logic. No I/O lives here."""
