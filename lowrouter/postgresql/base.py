"""Django's PostgreSQL backend, its connection pool made to skip connections the server ended
while they sat in it (a restart, an idle timeout, pg_terminate_backend).

The pool's own check (``CONN_HEALTH_CHECKS``) costs a round trip on every loan, and a failed
one makes the borrower sleep before trying the next, one second then doubling: after a restart
left six dead connections in the pool, a request waited past the pool timeout and failed. A
connection the server ended has its goodbye waiting on the socket; finding it costs a
zero-timeout select, and a dead one is closed and handed back, so the pool replaces it.
"""

import psycopg
from django.db.backends.postgresql import base

from lowrouter.asyncdb import closed_by_server


class DatabaseWrapper(base.DatabaseWrapper):
    def get_new_connection(self, conn_params: dict) -> psycopg.Connection:
        raw = super().get_new_connection(conn_params)
        while self.pool is not None and closed_by_server(raw):
            raw.close()
            # Closed, it is dropped by the pool, which opens another in its place.
            self.pool.putconn(raw)
            raw = super().get_new_connection(conn_params)
        return raw
