"""Which ``Host`` headers the dashboard answers: its guard against DNS rebinding.

A page on another site can point its own DNS name at 127.0.0.1 and then read the dashboard
as if it were that site: the browser sees a single origin. The request still carries the
site's name in ``Host``, so the dashboard answers only the names it knows it has: the
addresses it binds, ``localhost``, and each ``--allow-host`` (a Service's DNS name, an ingress
host). Any IP address is answered too (a Service's ClusterIP, a node's address): rebinding
needs a DNS name, and a page whose origin is an IP address is a page of whatever serves there.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware


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
    """A middleware that refuses, with 421, a request whose ``Host`` is no IP address and
    names none of ``hosts`` (the bound addresses), ``allow`` or ``localhost``."""
    names = frozenset({host_name(name) for name in (*hosts, *allow)} | {"localhost"})

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        given = request.headers.get(hdrs.HOST, "")
        name = host_name(given)
        if name in names or _is_address(name):
            return await handler(request)
        return web.Response(
            status=421,
            text=(
                f"stepwise dashboard: refused Host {given!r}: not a name this dashboard serves "
                f"(an IP address, localhost); serve that name with --allow-host {name or 'NAME'}\n"
            ),
        )

    return middleware


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True
