"""The consumer runtime: consumer groups with ack, retry, dead letter, claim and ordering.

Public entry points: :class:`cdb.runtime.consumer.Consumer` (one (topic, group) handler loop),
:func:`cdb.runtime.worker.run_worker` (a process running one consumer until SIGTERM), the
handler outcomes in :mod:`cdb.runtime.handler`, and the operator queries in
:mod:`cdb.runtime.inspect` and :mod:`cdb.runtime.dlq`.
"""
