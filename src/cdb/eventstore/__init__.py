"""The event store on Redis Streams: keys, topology, atomic appends and readers."""
