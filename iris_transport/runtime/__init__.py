"""The runtime: consumers and producers on top of any ``Transport``.

The runtime moves opaque messages and never imports the IRIS models: a
consumer takes a ``decode`` callable (see ``iris_transport.codec``).
"""

from iris_transport.runtime.consumer import Consumer, SyncConsumer
from iris_transport.runtime.dedup import DeduplicationStore, MemoryDeduplicationStore, SQLiteDeduplicationStore
from iris_transport.runtime.producer import (
    Producer,
    SyncProducer,
    check_message_size,
    estimate_message_size,
    plan_batches,
)
from iris_transport.runtime.retry import RetryPolicy

__all__ = [
    "Consumer",
    "DeduplicationStore",
    "MemoryDeduplicationStore",
    "Producer",
    "RetryPolicy",
    "SQLiteDeduplicationStore",
    "SyncConsumer",
    "SyncProducer",
    "check_message_size",
    "estimate_message_size",
    "plan_batches",
]
