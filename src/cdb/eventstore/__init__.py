"""The event store on Redis Streams: keys, topology, atomic appends and readers."""

from cdb.eventstore.store import AppendRequest, AppendResult, EventStore, TopicEntry

__all__ = ["AppendRequest", "AppendResult", "EventStore", "TopicEntry"]
