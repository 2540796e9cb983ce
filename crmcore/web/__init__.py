"""The core's record pages (leads, contacts, companies, deals, tasks, admin).

One module per area, each defining a Flask blueprint named ``bp`` (url prefix
``/app/<area>``); the built-in plugin registers every such module, as it does the API
resources. Pages reuse the API layer's schemas, filters and the entities' write path,
so a form and the API accept and refuse exactly the same input.
"""
