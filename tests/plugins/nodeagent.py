"""A test-only node agent: a Node whose Pods run as local processes.

Why: the chart's promise ("a killed worker pod's runs resume on its replacement") must be
proven with the real controllers: Deployment -> ReplicaSet -> scheduler -> a node that runs the
Pod. There is no container runtime here, so this agent plays the kubelet's part with plain
processes, and the host's stepwise install stands in for the image.

What it does, kubelet-style:

- registers Node ``name`` (Ready, with capacity, address 127.0.0.1) and renews its Lease in
  ``kube-node-lease`` every ``heartbeat`` seconds, so the node lifecycle controller keeps it
  Ready and untainted;
- watches the Pods bound to it (``spec.nodeName``; only those in ``namespaces`` when given);
- runs each container as a process group: ``command`` + ``args``; an empty ``command`` means
  the image's entrypoint, which is ``entrypoint`` for every image (nothing is pulled). The
  first word of a command is looked up in ``aliases`` (``stepwise``, ``python``, ``python3``
  run with this interpreter);
- gives the process the container's ``env`` (``value``, ``secretKeyRef`` and
  ``configMapKeyRef`` resolved through the API, ``optional`` honoured; ``fieldRef`` to the
  Pod's name, namespace, uid, node and ServiceAccount) on top of a small base: PATH, HOSTNAME
  (the Pod's name), HOME and TMPDIR in a per-Pod directory, which is also the working
  directory and holds one log file per container (``log(namespace, pod)``);
- stands in for the projected service-account volume: when the Pod has one (the admission
  plugin adds it unless ``automountServiceAccountToken`` is false), the agent mints a token for
  the Pod's ServiceAccount bound to the Pod (TokenRequest) and exports a kubeconfig that
  inlines it as ``KUBECONFIG``. The process then has exactly that account's RBAC, as in a
  cluster; a Pod without the volume gets no credentials at all;
- reports status: phase, the Pod's conditions (Initialized, ContainersReady, Ready) and
  containerStatuses (state, ready, restartCount, lastState);
- probes: ``httpGet`` readiness (drives ``ready``) and liveness (``failureThreshold`` misses
  in a row SIGKILL the container, which then restarts), honouring initialDelaySeconds,
  periodSeconds, timeoutSeconds, successThreshold and failureThreshold; a container without a
  readiness probe is ready once started;
- restartPolicy: Always and OnFailure restart an ended container after a back-off that
  doubles from ``restart_backoff`` up to 30 s; once no container can run again the Pod is
  Succeeded (every exit code 0) or Failed;
- deletion: a Pod marked for deletion gets SIGTERM, SIGKILL once its grace period has
  passed, and is then removed for good (grace 0, uid precondition), as the kubelet does; a
  Pod that vanishes (force-deleted) is SIGKILLed at once;
- ``kill(namespace, pod)`` SIGKILLs a Pod's processes from outside, the way a crash does.

The port trick: all processes share the host's network, so two Pods cannot both listen on the
port their spec names. Each container therefore gets a free port of its own, exported as
``$STEPWISE_HEALTH_PORT`` (``port_env``; it overrides the spec's value), and every HTTP probe
of that container is sent to 127.0.0.1 on that port, whatever port the probe names. The chart
passes the health port only through that variable (never as ``--health-port``), so its Pods
run unchanged.

Ignored: images and pull secrets, volumes and mounts other than the token, securityContext,
resources (the capacity only feeds the scheduler), startup probes, Pod IPs (the status names
the host only: loopback addresses may not appear in EndpointSlices). Unsupported, and
reported as a Failed Pod rather than half-run: init containers, ``envFrom``, exec or TCP
probes, other ``valueFrom`` sources.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import logging
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.plugins.kube import (
    ApiError,
    ControlPlane,
    _set_parent_death_signal,
    free_port,
    wait_until,
)

log = logging.getLogger(__name__)

RESTART_BACKOFF_CAP = 30.0
SERVICE_ACCOUNT_TOKEN_SECONDS = 3600


class PodConfigError(RuntimeError):
    """A container cannot start yet (e.g. a referenced Secret is missing); retried."""


class PodUnsupported(RuntimeError):
    """The Pod asks for something this agent does not do; the Pod is marked Failed."""


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _micro_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _default_aliases() -> dict[str, list[str]]:
    return {
        "stepwise": [sys.executable, "-m", "stepwise"],
        "python": [sys.executable],
        "python3": [sys.executable],
    }


@dataclass
class _Probe:
    """The state of one httpGet probe of one container."""

    spec: dict[str, Any]
    due: float = 0.0
    successes: int = 0
    failures: int = 0

    @property
    def period(self) -> float:
        return float(self.spec.get("periodSeconds", 10))

    def arm(self, started: float) -> None:
        self.due = started + float(self.spec.get("initialDelaySeconds", 0))
        self.successes = self.failures = 0

    def check(self, port: int, now: float) -> bool | None:
        """Probe if due: True/False once a threshold is crossed by this check, else None."""
        if now < self.due:
            return None
        self.due = now + self.period
        get = self.spec["httpGet"]
        url = f"http://127.0.0.1:{port}{get.get('path', '/')}"
        try:
            with urllib.request.urlopen(url, timeout=float(self.spec.get("timeoutSeconds", 1))):
                ok = True
        except urllib.error.HTTPError as exc:
            exc.close()
            ok = 200 <= exc.code < 400
        except OSError:
            ok = False
        if ok:
            self.failures = 0
            self.successes += 1
            return True if self.successes >= int(self.spec.get("successThreshold", 1)) else None
        self.successes = 0
        self.failures += 1
        return False if self.failures >= int(self.spec.get("failureThreshold", 3)) else None


@dataclass
class _Container:
    spec: dict[str, Any]
    port: int
    log_path: Path
    readiness: _Probe | None
    liveness: _Probe | None
    popen: subprocess.Popen[bytes] | None = None
    started_at: str | None = None
    restarts: int = 0
    ready: bool = False
    waiting: tuple[str, str] | None = ("ContainerCreating", "")
    restart_at: float | None = None
    last_exit: dict[str, Any] | None = None
    done: bool = False

    @property
    def name(self) -> str:
        return str(self.spec["name"])

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def signal(self, sig: signal.Signals) -> None:
        if self.running and self.popen is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.popen.pid, sig)


@dataclass
class _Pod:
    uid: str
    namespace: str
    name: str
    obj: dict[str, Any]
    root: Path
    containers: list[_Container] = field(default_factory=list)
    started: bool = False
    start_time: str | None = None
    gone: bool = False
    failed: tuple[str, str] | None = None
    kill_at: float | None = None
    kubeconfig: Path | None = None
    transitions: dict[str, tuple[str, str]] = field(default_factory=dict)
    reported: dict[str, Any] | None = None

    @property
    def spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = self.obj["spec"]
        return spec


class NodeAgent:
    """Runs the Pods bound to Node ``name`` as local processes; see the module docstring."""

    def __init__(
        self,
        kube: ControlPlane,
        workdir: Path,
        *,
        name: str = "agent",
        namespaces: Sequence[str] | None = None,
        entrypoint: Sequence[str] | None = None,
        aliases: Mapping[str, Sequence[str]] | None = None,
        port_env: str = "STEPWISE_HEALTH_PORT",
        heartbeat: float = 5.0,
        restart_backoff: float = 1.0,
        capacity: Mapping[str, str] | None = None,
    ) -> None:
        self.kube = kube
        self.workdir = workdir
        self.name = name
        self.namespaces = set(namespaces) if namespaces is not None else None
        self.aliases = {k: list(v) for k, v in (aliases or _default_aliases()).items()}
        self.entrypoint = list(entrypoint or self.aliases["stepwise"])
        self.port_env = port_env
        self.heartbeat = heartbeat
        self.restart_backoff = restart_backoff
        self.capacity = dict(capacity or {"cpu": "8", "memory": "32Gi", "pods": "110"})
        self._pods: dict[str, _Pod] = {}
        self._finished: set[str] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._node_uid = ""
        self._ready_since = _now()

    # ---- public surface ----------------------------------------------------------------------

    def start(self, timeout: float = 60.0) -> NodeAgent:
        """Register the Node, start watching, and return once the scheduler may use it."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._register()
        for target, label in (
            (self._heartbeat_loop, "heartbeat"),
            (self._watch_loop, "watch"),
            (self._run_loop, "pods"),
        ):
            thread = threading.Thread(target=target, name=f"{self.name}-{label}", daemon=True)
            thread.start()
            self._threads.append(thread)
        wait_until(
            self._schedulable, timeout=timeout, what=f"node {self.name} to be Ready and untainted"
        )
        return self

    def stop(self) -> None:
        """Kill every process, stop the threads, and remove the Node (and so its Lease).

        The Node is cordoned first, so the scheduler has stopped placing Pods on it by the
        time it goes (a later test's Pods must stay unscheduled, not bound to a dead node).
        """
        with contextlib.suppress(ApiError):
            self.kube.api(
                "PATCH",
                f"/api/v1/nodes/{self.name}",
                {"spec": {"unschedulable": True}},
                content_type="application/merge-patch+json",
            )
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout=30)
        self._threads.clear()
        with self._lock:
            pods = list(self._pods.values())
        for pod in pods:
            self._kill_all(pod)
        with contextlib.suppress(ApiError):
            self.kube.api("DELETE", f"/api/v1/nodes/{self.name}")

    def __enter__(self) -> NodeAgent:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def pids(self, namespace: str, pod: str) -> dict[str, int]:
        """The running processes of a Pod, by container name."""
        with self._lock:
            state = self._find(namespace, pod)
            return {
                c.name: c.popen.pid
                for c in (state.containers if state else [])
                if c.running and c.popen is not None
            }

    def port(self, namespace: str, pod: str, container: str | None = None) -> int:
        """The host port a Pod's container (the first by default) got as ``port_env``."""
        with self._lock:
            state = self._find(namespace, pod)
            for candidate in state.containers if state else []:
                if container in (None, candidate.name):
                    return candidate.port
        raise LookupError(f"no container {container or ''} of {namespace}/{pod} on {self.name}")

    def kill(self, namespace: str, pod: str, sig: signal.Signals = signal.SIGKILL) -> list[int]:
        """Send ``sig`` (SIGKILL: a crash) to every process of a Pod; returns their pids."""
        with self._lock:
            state = self._find(namespace, pod)
            if state is None:
                raise LookupError(f"no pod {namespace}/{pod} runs on node {self.name}")
            killed = [c.popen.pid for c in state.containers if c.running and c.popen is not None]
            for container in state.containers:
                container.signal(sig)
        self._wake.set()
        return killed

    def log(self, namespace: str, pod: str, container: str | None = None) -> str:
        """What a Pod's container (the first one by default) wrote to stdout and stderr."""
        with self._lock:
            state = self._find(namespace, pod)
            paths = [c.log_path for c in state.containers] if state else []
            names = [c.name for c in state.containers] if state else []
        if not paths:
            return f"(no pod {namespace}/{pod} on node {self.name})"
        path = paths[names.index(container)] if container else paths[0]
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""

    def logs(self) -> str:
        """Every container log this agent has written, headed by its path: for failure reports."""
        parts = []
        for path in sorted(self.workdir.glob("*/*/*.log")):
            text = path.read_text(encoding="utf-8", errors="replace")
            parts.append(f"--- {path.relative_to(self.workdir)} ---\n{text[-6000:]}")
        return "\n".join(parts) or "(no container logs)"

    # ---- the Node ----------------------------------------------------------------------------

    def _node_status(self) -> dict[str, Any]:
        heartbeat = _now()

        def condition(kind: str, status: str, reason: str) -> dict[str, str]:
            return {
                "type": kind,
                "status": status,
                "reason": reason,
                "message": "stepwise test node agent",
                "lastHeartbeatTime": heartbeat,
                "lastTransitionTime": self._ready_since,
            }

        return {
            "capacity": self.capacity,
            "allocatable": self.capacity,
            "conditions": [
                condition("Ready", "True", "KubeletReady"),
                condition("MemoryPressure", "False", "KubeletHasSufficientMemory"),
                condition("DiskPressure", "False", "KubeletHasNoDiskPressure"),
                condition("PIDPressure", "False", "KubeletHasSufficientPID"),
            ],
            "addresses": [
                {"type": "InternalIP", "address": "127.0.0.1"},
                {"type": "Hostname", "address": self.name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}},
            "nodeInfo": {
                "machineID": self.name,
                "systemUUID": self.name,
                "bootID": self.name,
                "kernelVersion": os.uname().release,
                "osImage": "stepwise test node agent",
                "containerRuntimeVersion": "process://local",
                "kubeletVersion": self.kube.api("GET", "/version")["gitVersion"],
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        }

    def _register(self) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.name,
                "labels": {
                    "kubernetes.io/hostname": self.name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                },
            },
        }
        node = self.kube.api("POST", "/api/v1/nodes", body)
        self._node_uid = node["metadata"]["uid"]
        self._patch_node_status()
        lease = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": self.name,
                "ownerReferences": [
                    {"apiVersion": "v1", "kind": "Node", "name": self.name, "uid": self._node_uid}
                ],
            },
            "spec": {
                "holderIdentity": self.name,
                "leaseDurationSeconds": 40,
                "renewTime": _micro_now(),
            },
        }
        self.kube.api(
            "POST", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases", lease
        )

    def _patch_node_status(self) -> None:
        self.kube.api(
            "PATCH",
            f"/api/v1/nodes/{self.name}/status",
            {"status": self._node_status()},
            content_type="application/merge-patch+json",
        )

    def _schedulable(self) -> bool:
        node = self.kube.api("GET", f"/api/v1/nodes/{self.name}")
        ready = any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in node.get("status", {}).get("conditions", [])
        )
        return ready and not node["spec"].get("taints") and not node["spec"].get("unschedulable")

    def _heartbeat_loop(self) -> None:
        while not self._stop.wait(self.heartbeat):
            try:
                self.kube.api(
                    "PATCH",
                    f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{self.name}",
                    {"spec": {"renewTime": _micro_now()}},
                    content_type="application/merge-patch+json",
                )
                self._patch_node_status()
            except (ApiError, OSError) as exc:
                log.warning("node %s: heartbeat failed: %s", self.name, exc)

    # ---- watching Pods -----------------------------------------------------------------------

    def _watch_loop(self) -> None:
        selector = urllib.parse.quote(f"spec.nodeName={self.name}")
        while not self._stop.is_set():
            try:
                listing = self.kube.api("GET", f"/api/v1/pods?fieldSelector={selector}")
                self._resync(listing["items"])
                version = listing["metadata"]["resourceVersion"]
                for kind, obj in self._stream(
                    f"/api/v1/pods?watch=1&allowWatchBookmarks=true&timeoutSeconds=10"
                    f"&fieldSelector={selector}&resourceVersion={version}"
                ):
                    if kind == "ERROR":
                        break  # e.g. 410 Gone: list again
                    if kind == "DELETED":
                        self._forget(obj)
                    elif kind in ("ADDED", "MODIFIED"):
                        self._upsert(obj)
            except (ApiError, OSError, ValueError, http.client.HTTPException) as exc:
                if not self._stop.is_set():
                    log.warning("node %s: pod watch failed, listing again: %s", self.name, exc)
                    self._stop.wait(1.0)

    def _stream(self, path: str) -> Iterator[tuple[str, dict[str, Any]]]:
        request = urllib.request.Request(
            self.kube.server + path,
            headers={"Authorization": f"Bearer {self.kube.admin_token}"},
        )
        context = ssl.create_default_context(cafile=str(self.kube.ca_file))
        with urllib.request.urlopen(request, timeout=60, context=context) as response:
            for line in response:
                if self._stop.is_set():
                    return
                event = json.loads(line)
                yield event["type"], event["object"]

    def _mine(self, obj: Mapping[str, Any]) -> bool:
        return self.namespaces is None or obj["metadata"]["namespace"] in self.namespaces

    def _resync(self, items: Sequence[dict[str, Any]]) -> None:
        present = {item["metadata"]["uid"] for item in items}
        with self._lock:
            for uid, pod in self._pods.items():
                if uid not in present:
                    pod.gone = True
        for item in items:
            self._upsert(item)

    def _upsert(self, obj: dict[str, Any]) -> None:
        if not self._mine(obj):
            return
        meta = obj["metadata"]
        with self._lock:
            if meta["uid"] in self._finished:
                return
            pod = self._pods.get(meta["uid"])
            if pod is None:
                root = self.workdir / meta["namespace"] / f"{meta['name']}-{meta['uid'][:8]}"
                pod = _Pod(meta["uid"], meta["namespace"], meta["name"], obj, root)
                self._pods[pod.uid] = pod
            pod.obj = obj
        self._wake.set()

    def _forget(self, obj: Mapping[str, Any]) -> None:
        with self._lock:
            pod = self._pods.get(obj["metadata"]["uid"])
            if pod is not None:
                pod.gone = True
        self._wake.set()

    def _find(self, namespace: str, name: str) -> _Pod | None:
        """The live (not yet finished) Pod of that name; caller holds the lock."""
        for pod in self._pods.values():
            if pod.namespace == namespace and pod.name == name:
                return pod
        return None

    # ---- running Pods ------------------------------------------------------------------------

    def _run_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(0.2)
            self._wake.clear()
            with self._lock:
                pods = list(self._pods.values())
            for pod in pods:
                try:
                    self._reconcile(pod)
                except Exception:  # keep tending the other Pods; the log says what broke
                    log.exception("pod %s/%s: reconcile failed", pod.namespace, pod.name)

    def _reconcile(self, pod: _Pod) -> None:
        if pod.gone:
            self._kill_all(pod)
            self._drop(pod)
            return
        if pod.obj["metadata"].get("deletionTimestamp"):
            self._terminate(pod)
            return
        if not pod.started:
            self._setup(pod)
        if pod.failed is None:
            for container in pod.containers:
                self._tend(pod, container)
        self._report(pod)

    def _setup(self, pod: _Pod) -> None:
        pod.started = True
        pod.start_time = _now()
        spec = pod.spec
        try:
            if spec.get("initContainers"):
                raise PodUnsupported("init containers")
            for c in spec["containers"]:
                if c.get("envFrom"):
                    raise PodUnsupported(f"envFrom (container {c['name']})")
                for kind in ("readinessProbe", "livenessProbe"):
                    if kind in c and "httpGet" not in c[kind]:
                        raise PodUnsupported(f"{kind} other than httpGet (container {c['name']})")
        except PodUnsupported as exc:
            pod.failed = ("Unsupported", f"the test node agent does not support {exc}")
            return
        for sub in ("home", "tmp"):
            (pod.root / sub).mkdir(parents=True, exist_ok=True)
        for c in spec["containers"]:
            pod.containers.append(
                _Container(
                    spec=c,
                    port=free_port(),
                    log_path=pod.root / f"{c['name']}.log",
                    readiness=_Probe(c["readinessProbe"]) if "readinessProbe" in c else None,
                    liveness=_Probe(c["livenessProbe"]) if "livenessProbe" in c else None,
                    restart_at=0.0,
                )
            )

    def _tend(self, pod: _Pod, container: _Container) -> None:
        """Start, restart and probe one container."""
        now = time.monotonic()
        popen = container.popen
        if popen is not None and popen.poll() is not None:
            self._ended(pod, container, popen.returncode)
        if container.popen is None:
            if container.done or container.restart_at is None or now < container.restart_at:
                return
            try:
                self._launch(pod, container)
            except PodConfigError as exc:
                container.waiting = ("CreateContainerConfigError", str(exc))
                container.restart_at = now + 1.0
            except PodUnsupported as exc:
                pod.failed = ("Unsupported", f"the test node agent does not support {exc}")
            return
        if (
            container.liveness is not None
            and container.liveness.check(container.port, now) is False
        ):
            log.info("pod %s/%s: %s failed liveness", pod.namespace, pod.name, container.name)
            container.signal(signal.SIGKILL)
        if container.readiness is not None:
            verdict = container.readiness.check(container.port, now)
            if verdict is not None:
                container.ready = verdict

    def _launch(self, pod: _Pod, container: _Container) -> None:
        spec = container.spec
        command = list(spec.get("command") or self.entrypoint)
        argv = [*self.aliases.get(command[0], command[:1]), *command[1:], *spec.get("args", [])]
        env = self._env(pod, container)
        with container.log_path.open("ab") as out:
            out.write(f"=== {_now()} start {argv}\n".encode())
            out.flush()
            container.popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=pod.root,
                env=env,
                start_new_session=True,
                preexec_fn=_set_parent_death_signal,  # children must not outlive the agent
            )
        container.started_at = _now()
        container.waiting = None
        container.restart_at = None
        container.ready = container.readiness is None
        started = time.monotonic()
        for probe in (container.readiness, container.liveness):
            if probe is not None:
                probe.arm(started)

    def _ended(self, pod: _Pod, container: _Container, code: int) -> None:
        container.last_exit = {
            "exitCode": code if code >= 0 else 128 - code,
            "reason": "Completed" if code == 0 else "Error",
            "startedAt": container.started_at,
            "finishedAt": _now(),
        }
        container.popen = None
        container.ready = False
        policy = pod.spec.get("restartPolicy", "Always")
        if policy == "Never" or (policy == "OnFailure" and code == 0):
            container.done = True
            return
        delay = min(self.restart_backoff * 2**container.restarts, RESTART_BACKOFF_CAP)
        container.restarts += 1
        container.restart_at = time.monotonic() + delay
        container.waiting = ("CrashLoopBackOff", f"back-off {delay:g}s restarting the container")

    def _env(self, pod: _Pod, container: _Container) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOSTNAME": pod.name,
            "HOME": str(pod.root / "home"),
            "TMPDIR": str(pod.root / "tmp"),
            "PYTHONUNBUFFERED": "1",
        }
        for var in container.spec.get("env", []):
            value = self._env_value(pod, var)
            if value is not None:
                env[var["name"]] = value
        kubeconfig = self._service_account_kubeconfig(pod)
        if kubeconfig is not None:
            env["KUBECONFIG"] = str(kubeconfig)
        env[self.port_env] = str(container.port)
        return env

    def _env_value(self, pod: _Pod, var: Mapping[str, Any]) -> str | None:
        if "valueFrom" not in var:
            return str(var.get("value", ""))
        source = var["valueFrom"]
        for kind, resource in (("secretKeyRef", "secrets"), ("configMapKeyRef", "configmaps")):
            if kind in source:
                ref = source[kind]
                try:
                    obj = self.kube.api(
                        "GET", f"/api/v1/namespaces/{pod.namespace}/{resource}/{ref['name']}"
                    )
                except ApiError as exc:
                    if exc.status != 404:
                        raise
                    obj = {}
                data = obj.get("data") or {}
                if ref["key"] not in data:
                    if ref.get("optional"):
                        return None
                    raise PodConfigError(
                        f"{resource[:-1]} {ref['name']!r} has no key {ref['key']!r}"
                    )
                raw: str = data[ref["key"]]
                if kind == "secretKeyRef":
                    return base64.b64decode(raw).decode()
                return raw
        if "fieldRef" in source:
            fields = {
                "metadata.name": pod.name,
                "metadata.namespace": pod.namespace,
                "metadata.uid": pod.uid,
                "spec.nodeName": self.name,
                "spec.serviceAccountName": pod.spec.get("serviceAccountName", "default"),
            }
            path = source["fieldRef"]["fieldPath"]
            if path in fields:
                return str(fields[path])
        raise PodUnsupported(f"env {var['name']}: valueFrom {sorted(source)}")

    def _service_account_kubeconfig(self, pod: _Pod) -> Path | None:
        """The projected token volume's stand-in: a kubeconfig with a Pod-bound token."""
        projected = any(
            "serviceAccountToken" in source
            for volume in pod.spec.get("volumes", [])
            for source in volume.get("projected", {}).get("sources", [])
        )
        if not projected:
            return None
        if pod.kubeconfig is None:
            account = pod.spec.get("serviceAccountName", "default")
            answer = self.kube.api(
                "POST",
                f"/api/v1/namespaces/{pod.namespace}/serviceaccounts/{account}/token",
                {
                    "apiVersion": "authentication.k8s.io/v1",
                    "kind": "TokenRequest",
                    "spec": {
                        "expirationSeconds": SERVICE_ACCOUNT_TOKEN_SECONDS,
                        "boundObjectRef": {
                            "apiVersion": "v1",
                            "kind": "Pod",
                            "name": pod.name,
                            "uid": pod.uid,
                        },
                    },
                },
            )
            # The harness's own kubeconfig writer: same cluster and CA, this token.
            pod.kubeconfig = self.kube.write_kubeconfig(
                pod.root / "kubeconfig",
                f"system:serviceaccount:{pod.namespace}:{account}",
                token=answer["status"]["token"],
                namespace=pod.namespace,
            )
        return pod.kubeconfig

    # ---- status and termination --------------------------------------------------------------

    def _container_status(self, container: _Container) -> dict[str, Any]:
        status: dict[str, Any] = {
            "name": container.name,
            "image": container.spec.get("image", ""),
            "imageID": "",
            "ready": container.ready,
            "started": container.running,
            "restartCount": container.restarts,
        }
        if container.running and container.popen is not None:
            status["containerID"] = f"process://{container.popen.pid}"
            status["state"] = {"running": {"startedAt": container.started_at}}
        elif container.done and container.last_exit is not None:
            status["state"] = {"terminated": container.last_exit}
        else:
            reason, message = container.waiting or ("ContainerCreating", "")
            status["state"] = {"waiting": {"reason": reason, "message": message}}
        if container.last_exit is not None and not container.done:
            status["lastState"] = {"terminated": container.last_exit}
        return status

    def _phase(self, pod: _Pod) -> str:
        if pod.failed is not None:
            return "Failed"
        if not pod.containers or any(c.started_at is None for c in pod.containers):
            return "Pending"
        if all(c.done for c in pod.containers):
            codes = [c.last_exit["exitCode"] for c in pod.containers if c.last_exit]
            return "Succeeded" if all(code == 0 for code in codes) else "Failed"
        return "Running"

    def _condition(self, pod: _Pod, kind: str, ok: bool) -> dict[str, str]:
        status = "True" if ok else "False"
        previous = pod.transitions.get(kind)
        if previous is None or previous[0] != status:
            pod.transitions[kind] = (status, _now())
        return {"type": kind, "status": status, "lastTransitionTime": pod.transitions[kind][1]}

    def _report(self, pod: _Pod) -> None:
        phase = self._phase(pod)
        ready = phase == "Running" and all(c.ready for c in pod.containers)
        scheduled = [
            c
            for c in pod.obj.get("status", {}).get("conditions", [])
            if c["type"] == "PodScheduled"
        ]
        status: dict[str, Any] = {
            "phase": phase,
            "hostIP": "127.0.0.1",
            "hostIPs": [{"ip": "127.0.0.1"}],
            "startTime": pod.start_time,
            "conditions": [
                *scheduled,
                self._condition(pod, "PodReadyToStartContainers", True),
                self._condition(pod, "Initialized", True),
                self._condition(pod, "ContainersReady", ready),
                self._condition(pod, "Ready", ready),
            ],
            "containerStatuses": [self._container_status(c) for c in pod.containers],
        }
        if pod.failed is not None:
            status["reason"], status["message"] = pod.failed
        if status == pod.reported:
            return
        self.kube.api(
            "PATCH",
            f"/api/v1/namespaces/{pod.namespace}/pods/{pod.name}/status",
            {"status": status},
            content_type="application/merge-patch+json",
        )
        pod.reported = status

    def _terminate(self, pod: _Pod) -> None:
        """Graceful stop of a Pod marked for deletion, then its final removal."""
        if pod.kill_at is None:
            grace = pod.obj["metadata"].get("deletionGracePeriodSeconds") or 0
            pod.kill_at = time.monotonic() + float(grace)
            for container in pod.containers:
                container.signal(signal.SIGTERM)
        if any(c.running for c in pod.containers) and time.monotonic() < pod.kill_at:
            return
        self._kill_all(pod)
        try:
            self.kube.api(
                "DELETE",
                f"/api/v1/namespaces/{pod.namespace}/pods/{pod.name}",
                {"gracePeriodSeconds": 0, "preconditions": {"uid": pod.uid}},
            )
        except ApiError as exc:
            if exc.status not in (404, 409):
                raise
        self._drop(pod)

    def _kill_all(self, pod: _Pod) -> None:
        for container in pod.containers:
            container.signal(signal.SIGKILL)
            if container.popen is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    container.popen.wait(timeout=10)

    def _drop(self, pod: _Pod) -> None:
        with self._lock:
            self._pods.pop(pod.uid, None)
            self._finished.add(pod.uid)
