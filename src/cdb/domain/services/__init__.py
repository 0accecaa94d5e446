"""Pure logic of the trading pipeline: signal, risk, paper execution, portfolio, market data.

Nothing here does I/O or reads the wall clock: every function takes events (and the state folded
from earlier events) and returns the events to emit, with ids derived from their causes, so a
replay reproduces them byte for byte. The services in :mod:`cdb.services` wire these functions to
the consumer runtime.
"""
