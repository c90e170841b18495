"""A real Kubernetes control plane for the tests and for a developer: etcd, kube-apiserver and,
on request, kube-controller-manager and kube-scheduler, on free 127.0.0.1 ports in a temp dir.

Why real binaries and not a fake: the operator and the chart must be proven against the real
API server (CRD schemas, CEL rules, the status subresource, printer columns, RBAC, watches,
Helm). The binaries are compiled from Go modules by ``bash scripts/k8s-tools.sh`` into
``${STEPWISE_CACHE:-~/.cache/stepwise}/k8s-<KUBE_VERSION>/bin`` (versions in
``tools/versions.env``). There is no node: Pods are scheduled nowhere and stay Pending.

Use from Python::

    with ControlPlane() as cp:
        cp.kubectl("get", "namespaces")

Fixtures (registered with ``-p tests.plugins.kube``): ``kube`` (one control plane per session,
controllers and scheduler on) and ``kube_namespace`` (a fresh namespace per test). Every test
that uses them is marked ``kube``; a control plane that cannot start fails the test, never
skips it.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import json
import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
VERSIONS_FILE = REPO_ROOT / "tools" / "versions.env"
BUILD_HINT = (
    "run `bash scripts/k8s-tools.sh` to build them (the first build takes 12-20 min on 2 cores)"
)

# Controllers that need a cloud provider or node CIDRs have nothing to do here.
KCM_CONTROLLERS = (
    "*,-node-ipam-controller,-cloud-node-lifecycle-controller,-node-route-controller,"
    "-service-lb-controller"
)
SERVICE_CIDR = "10.0.0.0/24"
# The API server's client certificate towards kubelets (RBAC: system:kubelet-api-admin).
KUBELET_CLIENT_SUBJECT = "/CN=kube-apiserver-kubelet-client/O=kube-apiserver"

T = TypeVar("T")


class ControlPlaneError(RuntimeError):
    """The control plane is missing binaries or could not start."""


class ApiError(RuntimeError):
    """A non-2xx answer from the API server; ``status`` and the decoded ``body`` say why."""

    def __init__(self, method: str, path: str, status: int, body: Any) -> None:
        message = body.get("message", body) if isinstance(body, dict) else body
        super().__init__(f"{method} {path}: HTTP {status}: {message}")
        self.status = status
        self.body = body


class ToolError(subprocess.CalledProcessError):
    """kubectl or helm failed; unlike CalledProcessError its message carries stderr."""

    def __str__(self) -> str:
        cmd = " ".join(str(part) for part in self.cmd)
        return f"`{cmd}` exited with {self.returncode}:\n{self.stderr or self.stdout}".rstrip()


# ---- versions and binaries ----------------------------------------------------------------


def read_versions(path: Path = VERSIONS_FILE) -> dict[str, str]:
    """``tools/versions.env`` as a dict; the build script reads the same file."""
    versions: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^([A-Z_]+)=([^\s#]+)", line)
        if match:
            versions[match[1]] = match[2]
    return versions


def cache_dir() -> Path:
    return Path(os.environ.get("STEPWISE_CACHE") or Path.home() / ".cache" / "stepwise")


def default_bin_dir() -> Path:
    """Where ``scripts/k8s-tools.sh`` puts the binaries of the pinned Kubernetes version."""
    return cache_dir() / f"k8s-{read_versions()['KUBE_VERSION']}" / "bin"


def find_binaries(bin_dir: Path, names: Sequence[str]) -> dict[str, Path]:
    missing = [name for name in names if not os.access(bin_dir / name, os.X_OK)]
    if missing:
        raise ControlPlaneError(
            f"Kubernetes test binaries missing from {bin_dir}: {', '.join(missing)}; {BUILD_HINT}"
        )
    return {name: bin_dir / name for name in names}


# ---- small utilities ----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(
    check: Callable[[], T | None],
    *,
    timeout: float = 30.0,
    interval: float = 0.2,
    what: str = "condition",
) -> T:
    """Poll ``check`` until it returns something truthy; fail with ``what`` after ``timeout``.

    Exceptions from ``check`` count as "not yet" (the last one is reported on timeout), so a
    check may simply call kubectl and index into the answer.
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            result = check()
            if result:
                return result
        except Exception as exc:
            last_error = exc
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error})" if last_error else ""
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}{detail}")
        time.sleep(interval)


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


def _set_parent_death_signal() -> None:
    """In the child: die with the parent, so a SIGKILLed pytest leaves no orphans.

    SIGKILL, not SIGTERM: a kube-apiserver whose etcd went away at the same moment hangs in
    its graceful shutdown, and nothing here needs one (all state is throwaway).
    """
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def spawn(
    argv: Sequence[str],
    log: Path,
    *,
    cwd: Path,
    die_with_parent: bool,
    pass_fds: Sequence[int] = (),
) -> subprocess.Popen[bytes]:
    """Start a server process with its output appended to ``log``."""
    with log.open("ab") as out:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            start_new_session=True,  # Ctrl-C in the terminal reaches pytest, not them
            preexec_fn=_set_parent_death_signal if die_with_parent else None,
            pass_fds=pass_fds,
        )


def _pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            state = stat.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def pid_runs(pid: int, executable: str) -> bool:
    """Whether ``pid`` still runs ``executable`` (guards against a recycled pid)."""
    try:
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0", 1)[0].decode()
    except OSError:
        return False
    return _pid_alive(pid) and Path(argv0).name == Path(executable).name


def stop_pids(pids: Sequence[tuple[int, str]], timeout: float = 10.0) -> None:
    """SIGTERM each ``(pid, executable)`` in order, SIGKILL what is still up after ``timeout``.

    Works for processes this Python did not start (``dev_cluster.py down``); a pid that now
    runs something else is left alone.
    """
    for pid, executable in pids:
        if not pid_runs(pid, executable):
            continue
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _pid_alive(pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


# ---- the control plane --------------------------------------------------------------------


@dataclass
class _Child:
    name: str
    executable: str
    popen: subprocess.Popen[bytes]
    log: Path


@dataclass
class ControlPlane:
    """etcd + kube-apiserver (+ controller-manager and scheduler) under ``workdir``.

    ``workdir=None`` uses a fresh temp dir that ``stop()`` removes; a given ``workdir`` is
    kept (logs are useful) except for etcd's data. ``die_with_parent`` ties the children's
    lifetime to this process; ``dev_cluster.py`` turns it off to leave them running.
    """

    workdir: Path | None = None
    controllers: bool = True
    scheduler: bool = True
    bin_dir: Path | None = None
    startup_timeout: float = 90.0
    die_with_parent: bool = True
    verbosity: int = 1
    # The test node's bridge address (tests/plugins/node.py): the API server binds and
    # advertises it, so pods reach it through the `kubernetes` Service, and it authenticates
    # to the kubelet by client certificate. None: 127.0.0.1 only, and no node can join.
    node_ip: str | None = None

    server: str = field(init=False, default="")
    admin_token: str = field(init=False, default="")
    ports: dict[str, int] = field(init=False, default_factory=dict)
    _kcm_token: str = field(init=False, default="", repr=False)
    _scheduler_token: str = field(init=False, default="", repr=False)
    _children: list[_Child] = field(init=False, default_factory=list)
    _bins: dict[str, Path] = field(init=False, default_factory=dict)
    _own_workdir: bool = field(init=False, default=False)
    _started: bool = field(init=False, default=False)

    # ---- paths ----

    @property
    def root(self) -> Path:
        if self.workdir is None:
            raise ControlPlaneError("the control plane has not been started")
        return self.workdir

    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig (user ``admin`` in ``system:masters``)."""
        return self.root / "admin.kubeconfig"

    @property
    def ca_file(self) -> Path:
        return self.root / "pki" / "ca.crt"

    @property
    def tools_dir(self) -> Path:
        return self.bin_dir or default_bin_dir()

    def log(self, name: str) -> Path:
        return self.root / "logs" / f"{name}.log"

    # ---- lifecycle ----

    def start(self) -> ControlPlane:
        """Start everything and wait until it is ready; on failure stop what did start."""
        if self._started:
            return self
        names = ["etcd", "kube-apiserver", "kubectl"]
        if self.controllers:
            names.append("kube-controller-manager")
        if self.scheduler:
            names.append("kube-scheduler")
        self._bins = find_binaries(self.tools_dir, names)
        if shutil.which("openssl") is None:
            raise ControlPlaneError("the `openssl` command is needed to make the test certificates")
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="stepwise-kube-"))
            self._own_workdir = True
        self._started = True
        atexit.register(self.stop)
        try:
            for sub in ("pki", "logs", "helm", "kube-cache"):
                (self.root / sub).mkdir(parents=True, exist_ok=True)
            self._make_credentials()
            self._start_etcd()
            self._start_apiserver()
            if self.controllers:
                self._start_controller_manager()
            if self.scheduler:
                self._start_scheduler()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop children newest first (SIGTERM, then SIGKILL); idempotent."""
        atexit.unregister(self.stop)
        children, self._children = self._children, []
        for child in reversed(children):
            if child.popen.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    child.popen.terminate()
                try:
                    child.popen.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    child.popen.kill()
                    child.popen.wait(timeout=10)
        self._started = False
        if self.workdir is None:
            return
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None
            self._own_workdir = False
        else:
            shutil.rmtree(self.workdir / "etcd", ignore_errors=True)

    def detach(self) -> dict[str, Any]:
        """Forget the children without stopping them; return what ``stop_pids`` needs later."""
        atexit.unregister(self.stop)
        state = {
            "pids": [[c.popen.pid, c.executable] for c in reversed(self._children)],
            "workdir": str(self.root),
            "kubeconfig": str(self.kubeconfig),
            "server": self.server,
            "bin_dir": str(self.tools_dir),
        }
        for child in self._children:
            child.popen.returncode = 0  # no "still running" ResourceWarning: it is meant to
        self._children = []
        self._started = False
        return state

    def __repr__(self) -> str:
        return f"ControlPlane(server={self.server or None!r}, workdir={self.workdir!r})"

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def pids(self) -> dict[str, int]:
        return {child.name: child.popen.pid for child in self._children}

    # ---- setup steps ----

    def _openssl(self, *args: str) -> None:
        result = subprocess.run(
            ["openssl", *args], cwd=self.root / "pki", capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise ControlPlaneError(f"openssl {args[0]} failed: {result.stderr.strip()}")

    def _make_credentials(self) -> None:
        """A CA, a serving cert it signs (SAN 127.0.0.1/localhost), the SA key, static tokens."""
        pki = self.root / "pki"
        (pki / "openssl.cnf").write_text(
            "[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = stepwise-test\n"
            "[ca]\nbasicConstraints = critical,CA:TRUE\nkeyUsage = critical,keyCertSign,cRLSign\n"
            "subjectKeyIdentifier = hash\n",
            encoding="utf-8",
        )
        cnf = ("-config", "openssl.cnf")
        days = ("-days", "3650")
        self._openssl(
            "req", "-x509", *cnf, "-extensions", "ca", "-newkey", "rsa:2048", "-nodes",
            "-keyout", "ca.key", "-out", "ca.crt", "-subj", "/CN=stepwise-test-ca", *days,
        )  # fmt: skip
        sans = ["IP:127.0.0.1", "DNS:localhost", "IP:10.0.0.1", "DNS:kubernetes"]
        sans += ["DNS:kubernetes.default", "DNS:kubernetes.default.svc"]
        self.issue_certificate("apiserver", "/CN=kube-apiserver", sans=sans + self._node_sans())
        if self.node_ip:
            self.issue_certificate("apiserver-kubelet-client", KUBELET_CLIENT_SUBJECT, client=True)
        self._openssl("genrsa", "-out", "sa.key", "2048")
        self.admin_token = secrets.token_hex(24)
        self._kcm_token = secrets.token_hex(24)
        self._scheduler_token = secrets.token_hex(24)
        (pki / "tokens.csv").write_text(
            f'{self.admin_token},admin,admin-uid,"system:masters"\n'
            f"{self._kcm_token},system:kube-controller-manager,kcm-uid\n"
            f"{self._scheduler_token},system:kube-scheduler,scheduler-uid\n",
            encoding="utf-8",
        )
        for key in ("ca.key", "sa.key", "tokens.csv"):
            (pki / key).chmod(0o600)

    def _node_sans(self) -> list[str]:
        return [f"IP:{self.node_ip}"] if self.node_ip else []

    def issue_certificate(
        self, name: str, subject: str, *, client: bool = False, sans: Sequence[str] = ()
    ) -> tuple[Path, Path]:
        """``pki/<name>.crt`` and ``.key``, signed by the test CA: a client certificate
        (``subject`` names the user and groups: ``/CN=user/O=group``), a serving one for the
        ``sans`` (``IP:…``, ``DNS:…``), or both."""
        usages = (["clientAuth"] if client else []) + (["serverAuth"] if sans else [])
        extensions = [
            "basicConstraints = critical,CA:FALSE",
            "keyUsage = critical,digitalSignature,keyEncipherment",
            f"extendedKeyUsage = {','.join(usages)}",
            "subjectKeyIdentifier = hash",
            "authorityKeyIdentifier = keyid,issuer",
        ]
        if sans:
            extensions.append(f"subjectAltName = {','.join(sans)}")
        pki = self.root / "pki"
        (pki / f"{name}.ext").write_text("\n".join(extensions) + "\n", encoding="utf-8")
        self._openssl(
            "req", "-new", "-config", "openssl.cnf", "-newkey", "rsa:2048", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject,
        )  # fmt: skip
        self._openssl(
            "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-set_serial", str(secrets.randbits(63)), "-extfile", f"{name}.ext",
            "-out", f"{name}.crt", "-days", "3650",
        )  # fmt: skip
        (pki / f"{name}.key").chmod(0o600)
        return pki / f"{name}.crt", pki / f"{name}.key"

    def _spawn(self, name: str, args: Sequence[str]) -> _Child:
        executable = str(self._bins[name])
        log = self.log(name)
        popen = spawn([executable, *args], log, cwd=self.root, die_with_parent=self.die_with_parent)
        child = _Child(name, executable, popen, log)
        self._children.append(child)
        return child

    def _wait_http(
        self, child: _Child, url: str, context: ssl.SSLContext | None, accept: Callable[[str], bool]
    ) -> None:
        deadline = time.monotonic() + self.startup_timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            if child.popen.poll() is not None:
                raise ControlPlaneError(
                    f"{child.name} exited with {child.popen.returncode} while starting; "
                    f"the end of {child.log}:\n{_tail(child.log)}"
                )
            try:
                with urllib.request.urlopen(url, timeout=5, context=context) as response:
                    body = response.read().decode("utf-8", "replace")
                if accept(body):
                    return
                last = body[:500]
            except urllib.error.HTTPError as exc:
                last = f"HTTP {exc.code}: {exc.read().decode('utf-8', 'replace')[:2000]}"
                exc.close()
            except (OSError, ValueError) as exc:
                last = str(exc)
            time.sleep(0.2)
        raise ControlPlaneError(
            f"{child.name} not ready at {url} after {self.startup_timeout:.0f}s ({last}); "
            f"the end of {child.log}:\n{_tail(child.log)}"
        )

    def _start_etcd(self) -> None:
        client, peer = free_port(), free_port()
        self.ports["etcd"] = client
        peer_url = f"http://127.0.0.1:{peer}"
        child = self._spawn(
            "etcd",
            [
                "--name=default",
                f"--data-dir={self.root / 'etcd'}",
                f"--listen-client-urls=http://127.0.0.1:{client}",
                f"--advertise-client-urls=http://127.0.0.1:{client}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=default={peer_url}",
                "--unsafe-no-fsync=true",  # throwaway data: durability buys nothing here
                "--log-level=warn",
            ],
        )
        self._wait_http(
            child,
            f"http://127.0.0.1:{client}/health",
            None,
            lambda body: json.loads(body).get("health") == "true",
        )

    def _start_apiserver(self) -> None:
        port = free_port()
        self.ports["kube-apiserver"] = port
        address = self.node_ip or "127.0.0.1"
        self.server = f"https://{address}:{port}"
        pki = self.root / "pki"
        args = [
            f"--etcd-servers=http://127.0.0.1:{self.ports['etcd']}",
            f"--bind-address={address}",
            # Explicit: a loopback bind would otherwise make it look for a host interface.
            f"--advertise-address={address}",
            f"--secure-port={port}",
            f"--cert-dir={pki}",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--service-account-issuer=https://kubernetes.default.svc",
            f"--service-account-key-file={pki / 'sa.key'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction",
            f"--token-auth-file={pki / 'tokens.csv'}",
            "--allow-privileged=true",
            "--profiling=false",
            f"--v={self.verbosity}",
        ]
        if self.node_ip:
            args += [
                f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
                f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
                f"--kubelet-certificate-authority={pki / 'ca.crt'}",
                "--kubelet-preferred-address-types=InternalIP",
            ]
        else:
            # The "kubernetes" Endpoints may not point at loopback: don't reconcile them.
            args.append("--endpoint-reconciler-type=none")
        if not self.controllers:
            # Without the controller-manager no namespace gets a "default" ServiceAccount,
            # and the admission plugin would then reject every Pod.
            args.append("--disable-admission-plugins=ServiceAccount")
        child = self._spawn("kube-apiserver", args)
        context = ssl.create_default_context(cafile=str(self.ca_file))
        self._wait_http(child, f"{self.server}/readyz", context, lambda body: body.strip() == "ok")
        self.write_kubeconfig(self.kubeconfig, "admin", token=self.admin_token)

    def _start_controller_manager(self) -> None:
        port = free_port()
        self.ports["kube-controller-manager"] = port
        kubeconfig = self.root / "controller-manager.kubeconfig"
        self.write_kubeconfig(kubeconfig, "system:kube-controller-manager", token=self._kcm_token)
        pki = self.root / "pki"
        child = self._spawn(
            "kube-controller-manager",
            [
                f"--kubeconfig={kubeconfig}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={port}",
                f"--cert-dir={self.root / 'controller-manager'}",
                # Each controller gets its own ServiceAccount, as in a real cluster.
                "--use-service-account-credentials=true",
                f"--controllers={KCM_CONTROLLERS}",
                f"--service-account-private-key-file={pki / 'sa.key'}",
                f"--root-ca-file={pki / 'ca.crt'}",
                f"--cluster-signing-cert-file={pki / 'ca.crt'}",
                f"--cluster-signing-key-file={pki / 'ca.key'}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--profiling=false",
                f"--v={self.verbosity}",
            ],
        )
        self._wait_http(child, f"https://127.0.0.1:{port}/healthz", _insecure(), _is_ok)

    def _start_scheduler(self) -> None:
        port = free_port()
        self.ports["kube-scheduler"] = port
        kubeconfig = self.root / "scheduler.kubeconfig"
        self.write_kubeconfig(kubeconfig, "system:kube-scheduler", token=self._scheduler_token)
        child = self._spawn(
            "kube-scheduler",
            [
                f"--kubeconfig={kubeconfig}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={port}",
                f"--cert-dir={self.root / 'scheduler'}",
                "--profiling=false",
                f"--v={self.verbosity}",
            ],
        )
        self._wait_http(child, f"https://127.0.0.1:{port}/healthz", _insecure(), _is_ok)

    def write_kubeconfig(
        self,
        path: Path,
        user: str,
        *,
        token: str = "",
        client_cert: tuple[Path, Path] | None = None,
        namespace: str = "default",
    ) -> Path:
        """A kubeconfig for ``user``, who authenticates by ``token`` or by ``client_cert``."""
        # JSON strings are valid YAML scalars: no YAML library needed.
        q = json.dumps
        if client_cert:
            credentials = (
                f"    client-certificate: {q(str(client_cert[0]))}\n"
                f"    client-key: {q(str(client_cert[1]))}\n"
            )
        else:
            credentials = f"    token: {q(token)}\n"
        path.write_text(
            "apiVersion: v1\nkind: Config\n"
            f"clusters:\n- name: stepwise-test\n  cluster:\n    server: {q(self.server)}\n"
            f"    certificate-authority: {q(str(self.ca_file))}\n"
            f"users:\n- name: {q(user)}\n  user:\n{credentials}"
            f"contexts:\n- name: {q(user)}\n  context:\n    cluster: stepwise-test\n"
            f"    user: {q(user)}\n    namespace: {q(namespace)}\n"
            f"current-context: {q(user)}\n",
            encoding="utf-8",
        )
        path.chmod(0o600)
        return path

    # ---- API access ----

    def api(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = None,
        content_type: str = "application/json",
        timeout: float = 30.0,
    ) -> Any:
        """One API request (admin unless ``token``); the decoded JSON answer or ApiError."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.server + path,
            data=data,
            method=method,
            headers={
                "Authorization": f"Bearer {token or self.admin_token}",
                "Accept": "application/json",
                "Content-Type": content_type,
            },
        )
        context = ssl.create_default_context(cafile=str(self.ca_file))
        try:
            with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            with exc:
                raw = exc.read()
                try:
                    decoded: Any = json.loads(raw)
                except ValueError:
                    decoded = raw.decode("utf-8", "replace")
                raise ApiError(method, path, exc.code, decoded) from None
        return json.loads(raw) if raw else None

    def create_namespace(self, prefix: str = "test") -> str:
        """A new namespace named ``<prefix>-<random>`` (prefix sanitised to a DNS label)."""
        clean = re.sub(r"[^a-z0-9-]+", "-", prefix.lower()).strip("-")[:40].strip("-") or "test"
        name = f"{clean}-{secrets.token_hex(3)}"
        self.api("POST", "/api/v1/namespaces", {"metadata": {"name": name}})
        return name

    def delete_namespace(self, name: str, *, wait: bool = False, timeout: float = 60.0) -> None:
        with contextlib.suppress(ApiError):
            self.api("DELETE", f"/api/v1/namespaces/{name}")
        if wait:
            wait_until(
                lambda: not self._exists(f"/api/v1/namespaces/{name}"),
                timeout=timeout,
                what=f"namespace {name} to be deleted",
            )

    def _exists(self, path: str) -> bool:
        try:
            self.api("GET", path)
        except ApiError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def create_token(
        self, namespace: str, service_account: str, expiration_seconds: int = 3600
    ) -> str:
        """A ServiceAccount token from the TokenRequest API (min. 600 s)."""
        answer = self.api(
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

    def service_account_kubeconfig(
        self,
        namespace: str,
        service_account: str,
        *,
        create: bool = True,
        expiration_seconds: int = 3600,
        path: Path | None = None,
    ) -> Path:
        """A kubeconfig acting as ``system:serviceaccount:<namespace>:<service_account>``.

        ``create`` makes the ServiceAccount if it does not exist yet. The token is inlined:
        kopf's kubeconfig reader does not follow ``tokenFile``.
        """
        if create and not self._exists(
            f"/api/v1/namespaces/{namespace}/serviceaccounts/{service_account}"
        ):
            self.api(
                "POST",
                f"/api/v1/namespaces/{namespace}/serviceaccounts",
                {"metadata": {"name": service_account}},
            )
        token = self.create_token(namespace, service_account, expiration_seconds)
        target = path or self.root / f"sa-{namespace}-{service_account}.kubeconfig"
        user = f"system:serviceaccount:{namespace}:{service_account}"
        return self.write_kubeconfig(target, user, token=token, namespace=namespace)

    # ---- CLI tools ----

    def env(self, kubeconfig: Path | None = None) -> dict[str, str]:
        """Environment for kubectl/helm: this cluster, the built tools first on PATH, and
        helm/kubectl caches inside the workdir (a test must not touch ``~/.kube``)."""
        env = dict(os.environ)
        env.update(
            KUBECONFIG=str(kubeconfig or self.kubeconfig),
            PATH=f"{self.tools_dir}{os.pathsep}{env.get('PATH', '')}",
            KUBECACHEDIR=str(self.root / "kube-cache"),
            HELM_CACHE_HOME=str(self.root / "helm" / "cache"),
            HELM_CONFIG_HOME=str(self.root / "helm" / "config"),
            HELM_DATA_HOME=str(self.root / "helm" / "data"),
        )
        return env

    def run(
        self,
        tool: str,
        *args: str,
        kubeconfig: Path | None = None,
        input: str | None = None,  # noqa: A002 - subprocess's name
        check: bool = True,
        timeout: float = 120.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run a built tool (``kubectl``, ``helm``, ...) against this cluster.

        Raises ToolError (with stderr) on a non-zero exit unless ``check=False``.
        """
        executable = self.tools_dir / tool
        if not os.access(executable, os.X_OK):
            raise ControlPlaneError(f"{executable} is missing; {BUILD_HINT}")
        result = subprocess.run(
            [str(executable), *args],
            input=input,
            capture_output=True,
            text=True,
            env=self.env(kubeconfig),
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise ToolError(result.returncode, result.args, result.stdout, result.stderr)
        return result

    def kubectl(
        self,
        *args: str,
        kubeconfig: Path | None = None,
        input: str | None = None,  # noqa: A002
        check: bool = True,
        timeout: float = 120.0,
    ) -> subprocess.CompletedProcess[str]:
        return self.run(
            "kubectl", *args, kubeconfig=kubeconfig, input=input, check=check, timeout=timeout
        )

    def helm(
        self,
        *args: str,
        kubeconfig: Path | None = None,
        input: str | None = None,  # noqa: A002
        check: bool = True,
        timeout: float = 180.0,
    ) -> subprocess.CompletedProcess[str]:
        return self.run(
            "helm", *args, kubeconfig=kubeconfig, input=input, check=check, timeout=timeout
        )

    def kubectl_json(self, *args: str, kubeconfig: Path | None = None) -> Any:
        """``kubectl ... -o json``, decoded."""
        return json.loads(self.kubectl(*args, "-o", "json", kubeconfig=kubeconfig).stdout)

    def apply(
        self, manifest: str, *, namespace: str | None = None, kubeconfig: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``kubectl apply -f -`` of a YAML/JSON string."""
        ns = ("-n", namespace) if namespace else ()
        return self.kubectl("apply", *ns, "-f", "-", input=manifest, kubeconfig=kubeconfig)


def _insecure() -> ssl.SSLContext:
    """For the components' self-signed /healthz endpoints only."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _is_ok(body: str) -> bool:
    return body.strip() == "ok"


# ---- pytest plugin ------------------------------------------------------------------------


@contextlib.contextmanager
def sigterm_unwinds() -> Iterator[None]:
    """Turn SIGTERM into SystemExit while the control plane runs, so teardown still happens."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    try:
        previous = signal.getsignal(signal.SIGTERM)
        install = previous == signal.SIG_DFL
        if install:
            signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        install = False
    try:
        yield
    finally:
        if install:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


@pytest.fixture(scope="session")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """The session's control plane: etcd, kube-apiserver, controller-manager and scheduler."""
    plane = ControlPlane(tmp_path_factory.mktemp("kube"), controllers=True, scheduler=True)
    with sigterm_unwinds():
        try:
            plane.start()
        except (ControlPlaneError, OSError, subprocess.SubprocessError) as exc:
            hint = "" if BUILD_HINT in str(exc) else f"\n(binaries missing or stale? {BUILD_HINT})"
            pytest.fail(f"could not start the test Kubernetes control plane: {exc}{hint}")
        try:
            yield plane
        finally:
            plane.stop()


@pytest.fixture
def kube_namespace(kube: ControlPlane, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace named after the test, deleted (without waiting) afterwards."""
    name = kube.create_namespace(request.node.name.split("[", 1)[0].removeprefix("test_"))
    yield name
    kube.delete_namespace(name)


_KUBE_FIXTURES = {"kube", "kube_namespace"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        uses_kube = bool(_KUBE_FIXTURES.intersection(fixtures))
        if uses_kube and item.get_closest_marker("kube") is None:
            item.add_marker(pytest.mark.kube)


def mapping_get(obj: Mapping[str, Any], dotted: str) -> Any:
    """``mapping_get(pod, "status.phase")``; None when a key is missing."""
    current: Any = obj
    for key in dotted.split("."):
        if not isinstance(current, Mapping):
            return None
        current = current.get(key)
    return current
