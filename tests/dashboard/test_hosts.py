"""``stepwise dashboard`` answers only requests for a name it has: the addresses it binds,
localhost, any IP address and each ``--allow-host``; any other ``Host`` (a DNS-rebinding
page's own name) is refused with 421 and a line that says how to serve that name."""

from __future__ import annotations

import urllib.parse

import pytest

from harness.workers import Procs
from stepwise import Client
from tests.dashboard.conftest import Dashboard, Page, StartDashboard


@pytest.fixture
async def database(sqlite_url: str) -> str:
    """An empty database (the dashboard never creates one)."""
    async with Client.connect(sqlite_url):
        pass
    return sqlite_url


def as_host(site: Dashboard, host: str, path: str = "/", method: str = "GET") -> Page:
    """``path`` requested with ``Host: host``, as a browser sends it for a page of that name."""
    return site.request(path, method=method, headers={"Host": host, "X-Stepwise-Action": "1"})


def port_of(site: Dashboard) -> int:
    port = urllib.parse.urlsplit(site.url).port
    assert port is not None
    return port


def test_a_host_the_dashboard_does_not_have_is_refused(
    database: str, dashboard: StartDashboard
) -> None:
    site = dashboard(database, "--allow-actions")
    port = port_of(site)
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "LocalHost.", "10.96.0.7:8484", "[::1]"):
        page = as_host(site, host)
        assert page.status == 200, (host, page.text)
        assert "No runs" in page.text
    for host in (f"attacker.example:{port}", "127.0.0.1.attacker.example", "10.0.0.7.nip.io", ""):
        page = as_host(site, host)
        assert page.status == 421, (host, page.text)
        assert "stepwise dashboard: refused Host" in page.text
    refused = as_host(site, f"attacker.example:{port}")
    assert refused.text == (
        f"stepwise dashboard: refused Host 'attacker.example:{port}': not a name this dashboard "
        "serves (an IP address, localhost); serve that name with --allow-host attacker.example\n"
    )
    # Every route, actions too: a rebinding page could otherwise press Cancel.
    assert as_host(site, "attacker.example", "/healthz").status == 421
    assert as_host(site, "attacker.example", "/runs/abc/cancel", method="POST").status == 421
    assert as_host(site, "localhost", "/runs/abc/cancel", method="POST").status == 404


def test_allow_host_serves_more_names(database: str, dashboard: StartDashboard) -> None:
    site = dashboard(
        database,
        "--allow-host", "demo-stepwise-dashboard.ns1.svc",
        "--allow-host", "Dashboard.Example.com",
    )  # fmt: skip
    for host in ("demo-stepwise-dashboard.ns1.svc:8484", "dashboard.example.com"):
        assert as_host(site, host).status == 200, host
    assert as_host(site, "demo-stepwise-dashboard:8484").status == 421


@pytest.mark.parametrize("name", ["http://dashboard.example.com", "example.com:8484", ""])
def test_allow_host_refuses_what_is_not_a_host_name(procs: Procs, name: str) -> None:
    done = procs.cli("dashboard", "--allow-host", name)
    assert done.returncode == 2
    assert f"Invalid value for '--allow-host': {name!r} is not a host name" in done.stderr
