"""gunicorn's configuration for production: gevent workers, so that an open WebSocket
costs a greenlet, not a thread.

    gunicorn -c python:crmcore.gunicorn_conf -w 2 -b 0.0.0.0:8000 'crmcore.wsgi:app'

Every open board, record page, inbox and chat visitor holds its request for as long as
the page is open. Under gthread workers each one held a thread, and 8 threads per worker
were gone with 8 open pages: plain HTTP stopped being answered. A gevent worker serves
each connection in a greenlet, so thousands of open sockets wait at the cost of a little
memory each, and plain requests keep being answered.

The standard library is patched here, first, before gunicorn loads the app in its
workers (never use ``--preload`` with this file: the app would be imported by the master
before its workers patch anything). Patched then, ``threading.local`` is greenlet-local
(peewee's connection state, our transaction stacks: one per request, as they were one
per thread), locks, conditions and ``time.sleep`` yield to other greenlets (the realtime
hub's subscriptions and its Redis listener), and sockets are cooperative (redis-py is
pure Python). psycopg2 is a C library: psycogreen makes it wait for PostgreSQL through
gevent instead of blocking the worker. :func:`crmcore.wsgi.check_gevent` refuses to
start when the patching came too late.

Command-line options win over what is set here (``-w``, ``-b``, ``--timeout``...).
``CRM_GUNICORN_WORKER_CONNECTIONS`` bounds the connections one worker holds (default
10,000; raise ``ulimit -n`` to match) and ``CRM_GUNICORN_CONTROL_SOCKET`` gives this
instance a control socket for ``gunicornc`` (gunicorn >= 25.1): off by default, because
every instance of a user shares the default path, and a second server on the machine
took the first one's socket over.
"""

from gevent import monkey

monkey.patch_all()

import os  # noqa: E402  (after the patching, which must come first)

from psycogreen.gevent import patch_psycopg  # noqa: E402

patch_psycopg()

worker_class = "gevent"
worker_connections = int(os.environ.get("CRM_GUNICORN_WORKER_CONNECTIONS", "10000"))
workers = 2
bind = ["127.0.0.1:8000"]
# A worker that stops answering its master's heartbeat for this long is restarted; with
# greenlets the heartbeat keeps beating while sockets wait, so open sockets never trip it.
timeout = 30
# How long a stopping worker lets requests in hand finish (see post_worker_init for the
# open WebSockets, which would otherwise hold it for all of it).
graceful_timeout = 10

control_socket = os.environ.get("CRM_GUNICORN_CONTROL_SOCKET", "")
control_socket_disable = not control_socket


def post_worker_init(worker) -> None:  # noqa: ANN001 - gunicorn's Worker
    """Once the worker has loaded the app: keep the app's objects out of garbage
    collections, and close the realtime hub when the worker is told to stop."""
    import gc

    import gevent

    # Modules, models, schemas: some 110,000 objects that live as long as the worker. A
    # full collection walks every object it tracks and pauses every greenlet meanwhile:
    # with these in, each took 100 ms and more once a worker held a thousand sockets.
    gc.freeze()

    def close_hub_when_stopping() -> None:
        # SIGTERM, a restart, --max-requests: every open WebSocket gets close code 1012
        # ("reconnect shortly") at once and its page reconnects to another worker,
        # resuming from its last event id, instead of holding this one for the whole
        # graceful timeout and then being cut off.
        while worker.alive:
            gevent.sleep(0.5)
        crm = getattr(worker.wsgi, "extensions", {}).get("crm")
        if crm is not None:
            crm.hub.close()

    gevent.spawn(close_hub_when_stopping)
