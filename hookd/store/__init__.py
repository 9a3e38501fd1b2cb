"""The store: the only code that touches SQLite (pending work, the batch spool, the log).

``core`` holds the connection and its group-committing writer, ``schema`` the tables and
row mapping, ``log`` the admin API's read-only queries, ``files`` the lock beside the
database and the check that the file is still there.
"""

from hookd.store.core import Counters, OpenBatch, Outcome, StorageLost, Store
from hookd.store.files import StoreLocked
from hookd.store.log import LogReader

__all__ = ["Counters", "LogReader", "OpenBatch", "Outcome", "StorageLost", "Store", "StoreLocked"]
