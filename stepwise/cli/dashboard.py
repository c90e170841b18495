"""``stepwise dashboard``: serve the web dashboard over the database until SIGTERM."""

from __future__ import annotations

import os

import click

from stepwise.cli import console, options
from stepwise.client.client import Client
from stepwise.errors import ConfigurationError, InvalidArgument


def _host_name(text: str) -> str:
    """A name for ``--allow-host``: a DNS name or an address, without scheme, path or port."""
    if not text or text != text.strip() or any(c in text for c in "/:@ "):
        raise InvalidArgument("", f"{text!r} is not a host name (dashboard.example.com)")
    return text.lower().rstrip(".")


HOST_NAME = options.Checked("host", _host_name)


@click.command("dashboard")
@options.option(
    "--host", "hosts", multiple=True, default=["127.0.0.1"],
    help="address to bind, repeatable (the default serves this machine only)",
)  # fmt: skip
@options.option(
    "--port", type=options.PORT, default=8484,
    help="port to serve on (0: any free port, printed at start)",
)  # fmt: skip
@options.option(
    "--allow-host", "allow_hosts", multiple=True, type=HOST_NAME,
    help="also answer requests for this host name, repeatable (a Service's DNS name, an "
    "ingress host); besides those, only localhost and the bound addresses are answered",
)  # fmt: skip
@options.option(
    "--allow-actions", is_flag=True,
    help="show Cancel and Retry buttons (read-only without it)",
)  # fmt: skip
@options.database
@options.wait_for_database
def dashboard(
    hosts: tuple[str, ...],
    port: int,
    allow_hosts: tuple[str, ...],
    allow_actions: bool,
    database_url: str,
    schema: str,
    wait_for_database: float,
) -> int:
    """Serve the web dashboard: runs, their steps on a timeline, errors, signals, children."""

    async def serve() -> int:
        try:
            from stepwise.dashboard import app
        except ModuleNotFoundError as exc:
            raise ConfigurationError(
                f"the dashboard needs {exc.name}: pip install 'stepwise-workflows[dashboard]'"
            ) from None
        async with Client.connect(
            database_url, schema=schema, create=False, wait_for_database=wait_for_database
        ) as client:
            try:
                runner = await app.serve(
                    client, hosts, port, allow_actions=allow_actions, allow_hosts=allow_hosts
                )
            except OSError as exc:
                raise ConfigurationError(
                    f"cannot serve the dashboard on {' '.join(hosts)} port {port}: "
                    f"{os.strerror(exc.errno) if exc.errno else exc}"
                ) from None
            try:
                url = f"http://{hosts[0]}:{app.bound_port(runner)}/"
                print(f"stepwise dashboard serving {url}", flush=True)
                await console.stop_on_signals().wait()
            finally:
                await runner.cleanup()
        return 0

    return console.execute(serve())
