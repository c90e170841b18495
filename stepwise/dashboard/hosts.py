"""Which ``Host`` headers the dashboard answers: its guard against DNS rebinding.

A page on another site can point its own DNS name at 127.0.0.1 and then read the dashboard
as if it were that site: the browser sees a single origin. The request still carries the
site's name in ``Host``, so the dashboard answers only the names it knows it has: the
addresses it binds, ``localhost``, and each ``--allow-host`` (a Service's DNS name, an ingress
host). Bound to every address (``0.0.0.0``, ``::``), it also answers any IP address: rebinding
needs a DNS name, and every address of the machine is then one it serves.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware

EVERY_ADDRESS = frozenset({"0.0.0.0", "::"})


def host_name(header: str) -> str:
    """The name in a ``Host`` header (or a ``--host``): lowercase, without port, brackets or
    final dot."""
    text = header.strip().lower()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    return text.rstrip(".")


def guard(hosts: Iterable[str], allow: Iterable[str]) -> Middleware:
    """A middleware that refuses, with 421, a request whose ``Host`` names none of ``hosts``
    (the bound addresses), ``allow`` or ``localhost``."""
    bound = {host_name(host) for host in hosts}
    names = frozenset(bound | {host_name(name) for name in allow} | {"localhost"})
    any_address = not bound.isdisjoint(EVERY_ADDRESS)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        given = request.headers.get(hdrs.HOST, "")
        name = host_name(given)
        if name in names or (any_address and _is_address(name)):
            return await handler(request)
        return web.Response(
            status=421,
            text=(
                f"stepwise dashboard: refused Host {given!r}: not a name this dashboard serves "
                f"(its addresses, localhost); serve that name with --allow-host {name or 'NAME'}\n"
            ),
        )

    return middleware


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True
