"""The ``cdb`` command line: the composition root that wires settings, servers and services."""
