"""WSGI entry point for production servers: gunicorn with gevent workers, configured by
:mod:`crmcore.gunicorn_conf` (which patches the standard library before the app loads)::

    gunicorn -c python:crmcore.gunicorn_conf -w 2 -b 0.0.0.0:8000 'crmcore.wsgi:app'

Reads the configuration from ``$CRM_CONFIG_DIR`` (default ``./config``). Run ``crm migrate``
before starting, and ``crm worker`` beside the web processes for tasks and scheduled jobs.
"""

from __future__ import annotations

import sys


def check_gevent() -> None:
    """Refuse to serve under gevent when the patching came too late or psycopg2 would block.

    peewee keeps each connection's state in a ``threading.local`` subclass made when
    peewee is imported: imported before ``monkey.patch_all()`` it stays thread-local, and
    every greenlet of a worker would share one connection and one transaction. psycopg2
    blocks the whole worker on each query unless psycogreen set its wait callback."""
    monkey = sys.modules.get("gevent.monkey")
    if monkey is None or not monkey.is_module_patched("threading"):
        return  # not under gevent: threads are threads
    import threading

    import peewee
    import psycopg2.extensions

    if not issubclass(peewee._ConnectionLocal, threading.local):
        raise RuntimeError(
            "gevent patched the standard library after peewee was imported, so database "
            "connections would be shared by every greenlet: start gunicorn with "
            "-c python:crmcore.gunicorn_conf and without --preload")
    if psycopg2.extensions.get_wait_callback() is None:
        raise RuntimeError(
            "psycopg2 would block every greenlet of this worker on each query: call "
            "psycogreen.gevent.patch_psycopg() (crmcore.gunicorn_conf does)")


check_gevent()

from crmcore.app import create_app  # noqa: E402  (checked first)

app = create_app()
