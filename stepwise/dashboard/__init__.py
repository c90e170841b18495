"""The web dashboard (``stepwise dashboard``): a small server-rendered UI over the client.

It reads runs, steps, signals and child runs through ``stepwise.client`` only, so it shows
what ``stepwise runs show`` shows and never executes a workflow. Read-only unless started with
``--allow-actions``, which adds Cancel and Retry (``Client.cancel``, ``Client.retry``).
Its libraries (aiohttp, jinja2) come with the ``dashboard`` extra.
"""
