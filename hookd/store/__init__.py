"""The store: the only code that touches SQLite (pending work, the batch spool, the log).

``core`` holds the connection and its group-committing writer, ``schema`` the tables and
row mapping, ``log`` the admin API's read-only queries.
"""

from hookd.store.core import Counters, OpenBatch, Outcome, Store
from hookd.store.log import LogReader

__all__ = ["Counters", "LogReader", "OpenBatch", "Outcome", "Store"]
