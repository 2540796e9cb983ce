"""WSGI entry point for production servers, e.g.::

    gunicorn --worker-class gthread --threads 8 -w 2 'crmcore.wsgi:app'

Reads the configuration from ``$CRM_CONFIG_DIR`` (default ``./config``). Run ``crm migrate``
before starting, and ``crm worker`` beside the web processes for tasks and scheduled jobs.
"""

from crmcore.app import create_app

app = create_app()
