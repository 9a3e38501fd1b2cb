"""The store: the only code that touches SQLite (pending work, the batch spool, the log).

``interface`` says what the rest of hookd asks of storage (the ``Storage`` protocol and
its values); ``sqlite`` is the SQLite implementation, ``Store``, which queues the
operations of ``ops`` on the group-committing ``writer``. ``packing`` is how a flush
writes many rows with one statement, ``schema`` the tables, their migrations and packed
rows, ``log`` the admin API's read-only queries, ``failed`` the reads of a recovery,
``files`` the lock beside the database and the check that the file is still there.
"""

from hookd.store.files import StoreLocked
from hookd.store.interface import (
    Counters,
    DeliveryLog,
    Failed,
    OpenBatch,
    OpenWork,
    Outcome,
    Storage,
    StorageLost,
    StoredWebhook,
)
from hookd.store.log import LogReader
from hookd.store.sqlite import Store

__all__ = [
    "Counters",
    "DeliveryLog",
    "Failed",
    "LogReader",
    "OpenBatch",
    "OpenWork",
    "Outcome",
    "Storage",
    "StorageLost",
    "Store",
    "StoreLocked",
    "StoredWebhook",
]
