"""The one way the tests and the bench reach the Kubernetes API: ``kubernetes_asyncio`` (the
operator's own client library), by raw path and JSON body, so a test can say exactly which
request it makes. Tests about kubectl use kubectl (``ControlPlane.kubectl``).

The tests are mostly synchronous, so ``KubeApi`` runs the client on a private event loop in a
thread of its own and waits for each answer; callers on any thread (the bench's
``asyncio.to_thread`` included) share its connection pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import secrets
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kubernetes_asyncio import client as k8s
from kubernetes_asyncio.client.exceptions import ApiException

from harness.errors import ApiError
from harness.processes import wait_until

_ANY_SUCCESS = {status: "object" for status in range(200, 300)}
"""Every 2xx answer decoded as plain JSON (dicts and lists), not as generated models."""


class KubeApi:
    """Requests to ``server`` as the holder of ``token`` (or of the token given per request)."""

    def __init__(self, server: str, ca_file: Path, token: str) -> None:
        self.server = server
        self.ca_file = ca_file
        self.token = token
        self._clients: dict[str, k8s.ApiClient] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = None,
        content_type: str = "application/json",
        timeout: float = 30.0,
    ) -> Any:
        """One API request; the decoded JSON answer (None when empty) or ApiError."""
        call = self._request(method, path, body, token or self.token, content_type, timeout)
        return asyncio.run_coroutine_threadsafe(call, self._event_loop()).result()

    def close(self) -> None:
        """Close the connections and stop the loop's thread; idempotent."""
        with self._lock:
            loop, thread, self._loop, self._thread = self._loop, self._thread, None, None
        if loop is None or thread is None:
            return
        asyncio.run_coroutine_threadsafe(self._close_clients(), loop).result()
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()

    # ---- what the tests ask often ----

    def exists(self, path: str) -> bool:
        try:
            self.request("GET", path)
        except ApiError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def create_namespace(self, prefix: str = "test") -> str:
        """A new namespace named ``<prefix>-<random>`` (prefix sanitised to a DNS label)."""
        clean = re.sub(r"[^a-z0-9-]+", "-", prefix.lower()).strip("-")[:40].strip("-") or "test"
        name = f"{clean}-{secrets.token_hex(3)}"
        self.request("POST", "/api/v1/namespaces", {"metadata": {"name": name}})
        return name

    def delete_namespace(self, name: str, *, wait: bool = False, timeout: float = 60.0) -> None:
        with contextlib.suppress(ApiError):
            self.request("DELETE", f"/api/v1/namespaces/{name}")
        if wait:
            wait_until(
                lambda: not self.exists(f"/api/v1/namespaces/{name}"),
                timeout=timeout,
                what=f"namespace {name} to be deleted",
            )

    def create_token(
        self, namespace: str, service_account: str, expiration_seconds: int = 3600
    ) -> str:
        """A ServiceAccount token from the TokenRequest API (min. 600 s)."""
        answer = self.request(
            "POST",
            f"/api/v1/namespaces/{namespace}/serviceaccounts/{service_account}/token",
            {
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {"expirationSeconds": expiration_seconds},
            },
        )
        token: str = answer["status"]["token"]
        return token

    # ---- on the loop's thread ----

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="kubeapi", daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    def _client(self, token: str) -> k8s.ApiClient:
        client = self._clients.get(token)
        if client is None:
            configuration = k8s.Configuration(
                host=self.server,
                api_key={"BearerToken": token},
                api_key_prefix={"BearerToken": "Bearer"},
            )
            configuration.ssl_ca_cert = str(self.ca_file)
            client = self._clients[token] = k8s.ApiClient(configuration)
        return client

    async def _request(
        self,
        method: str,
        path: str,
        body: Any,
        token: str,
        content_type: str,
        timeout: float,
    ) -> Any:
        headers: Mapping[str, str] = {"Accept": "application/json", "Content-Type": content_type}
        try:
            answer = await self._client(token).call_api(
                path,
                method,
                header_params=dict(headers),
                body=body,
                response_types_map=_ANY_SUCCESS,
                auth_settings=["BearerToken"],
                _return_http_data_only=True,
                _request_timeout=timeout,
            )
        except ApiException as exc:
            try:
                decoded: Any = json.loads(exc.body or "")
            except ValueError:
                decoded = exc.body
            raise ApiError(method, path, exc.status, decoded) from None
        return None if answer == "" else answer

    async def _close_clients(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.close()


def mapping_get(obj: Mapping[str, Any], dotted: str) -> Any:
    """``mapping_get(pod, "status.phase")``; None when a key is missing."""
    current: Any = obj
    for key in dotted.split("."):
        if not isinstance(current, Mapping):
            return None
        current = current.get(key)
    return current
