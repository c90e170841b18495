"""A real Kubernetes control plane for the tests, the bench and a developer: etcd,
kube-apiserver and, on request, kube-controller-manager and kube-scheduler, on free
127.0.0.1 ports in a temp dir; kubectl and helm pointed at it.

Why real binaries and not a fake: the operator and the chart must be proven against the real
API server (CRD schemas, CEL rules, the status subresource, printer columns, RBAC, watches,
Helm). The binaries come from ``harness.tools``. There is no node unless ``harness.node`` joins
one: Pods are scheduled nowhere and stay Pending.

Use from Python::

    with ControlPlane() as cp:
        cp.kubectl("get", "namespaces")
        cp.api.request("GET", "/version")
"""

from __future__ import annotations

import atexit
import json
import os
import secrets
import shutil
import ssl
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import processes
from harness.errors import ControlPlaneError
from harness.kubeapi import KubeApi
from harness.pki import Pki, write_kubeconfig
from harness.processes import free_port, spawn
from harness.tools import default_bin_dir, find_binaries, run_tool

# Controllers that need a cloud provider or node CIDRs have nothing to do here.
KCM_CONTROLLERS = (
    "*,-node-ipam-controller,-cloud-node-lifecycle-controller,-node-route-controller,"
    "-service-lb-controller"
)
SERVICE_CIDR = "10.0.0.0/24"
# The API server's client certificate towards kubelets (RBAC: system:kubelet-api-admin).
KUBELET_CLIENT_SUBJECT = "/CN=kube-apiserver-kubelet-client/O=kube-apiserver"


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
    # The test node's bridge address (harness.node): the API server binds and advertises it,
    # so pods reach it through the `kubernetes` Service, and it authenticates to the kubelet
    # by client certificate. None: 127.0.0.1 only, and no node can join.
    node_ip: str | None = None

    server: str = field(init=False, default="")
    admin_token: str = field(init=False, default="")
    ports: dict[str, int] = field(init=False, default_factory=dict)
    _kcm_token: str = field(init=False, default="", repr=False)
    _scheduler_token: str = field(init=False, default="", repr=False)
    _children: list[_Child] = field(init=False, default_factory=list)
    _bins: dict[str, Path] = field(init=False, default_factory=dict)
    _api: KubeApi | None = field(init=False, default=None, repr=False)
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
    def pki(self) -> Pki:
        return Pki(self.root / "pki")

    @property
    def ca_file(self) -> Path:
        return self.pki.ca_file

    @property
    def tools_dir(self) -> Path:
        return self.bin_dir or default_bin_dir()

    @property
    def api(self) -> KubeApi:
        """The Kubernetes API as the admin (``system:masters``)."""
        if self._api is None:
            self._api = KubeApi(self.server, self.ca_file, self.admin_token)
        return self._api

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
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="stepwise-kube-"))
            self._own_workdir = True
        self._started = True
        atexit.register(self.stop)
        try:
            for sub in ("logs", "helm", "kube-cache"):
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
        self._close_api()
        children, self._children = self._children, []
        for child in reversed(children):
            processes.stop(child.popen)
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
        self._close_api()
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

    def _close_api(self) -> None:
        api, self._api = self._api, None
        if api is not None:
            api.close()

    def __repr__(self) -> str:
        return f"ControlPlane(server={self.server or None!r}, workdir={self.workdir!r})"

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def pids(self) -> dict[str, int]:
        return {child.name: child.popen.pid for child in self._children}

    # ---- setup steps ----

    def _make_credentials(self) -> None:
        """The CA, a serving cert it signs (SAN 127.0.0.1/localhost), the SA key, static tokens."""
        pki = self.pki
        pki.create()
        sans = ["IP:127.0.0.1", "DNS:localhost", "IP:10.0.0.1", "DNS:kubernetes"]
        sans += ["DNS:kubernetes.default", "DNS:kubernetes.default.svc"]
        if self.node_ip:
            sans.append(f"IP:{self.node_ip}")
            pki.issue_certificate("apiserver-kubelet-client", KUBELET_CLIENT_SUBJECT, client=True)
        pki.issue_certificate("apiserver", "/CN=kube-apiserver", sans=sans)
        self.admin_token = secrets.token_hex(24)
        self._kcm_token = secrets.token_hex(24)
        self._scheduler_token = secrets.token_hex(24)
        tokens = pki.directory / "tokens.csv"
        tokens.write_text(
            f'{self.admin_token},admin,admin-uid,"system:masters"\n'
            f"{self._kcm_token},system:kube-controller-manager,kcm-uid\n"
            f"{self._scheduler_token},system:kube-scheduler,scheduler-uid\n",
            encoding="utf-8",
        )
        tokens.chmod(0o600)

    def _spawn(self, name: str, args: Sequence[str]) -> _Child:
        executable = str(self._bins[name])
        log = self.log(name)
        popen = spawn([executable, *args], log, cwd=self.root, die_with_parent=self.die_with_parent)
        child = _Child(name, executable, popen, log)
        self._children.append(child)
        return child

    def _wait_http(
        self,
        child: _Child,
        url: str,
        context: ssl.SSLContext | None,
        accept: Callable[[str], bool] = processes.is_ok,
    ) -> None:
        processes.wait_http(
            child.popen, child.name, child.log, url, context, accept, self.startup_timeout
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
        self._wait_http(child, f"{self.server}/readyz", context)
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
        self._wait_http(child, f"https://127.0.0.1:{port}/healthz", processes.insecure())

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
        self._wait_http(child, f"https://127.0.0.1:{port}/healthz", processes.insecure())

    def write_kubeconfig(
        self,
        path: Path,
        user: str,
        *,
        token: str = "",
        client_cert: tuple[Path, Path] | None = None,
        namespace: str = "default",
    ) -> Path:
        """A kubeconfig for this cluster as ``user`` (by ``token`` or ``client_cert``)."""
        return write_kubeconfig(
            path,
            server=self.server,
            ca_file=self.ca_file,
            user=user,
            token=token,
            client_cert=client_cert,
            namespace=namespace,
        )

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
        accounts = f"/api/v1/namespaces/{namespace}/serviceaccounts"
        if create and not self.api.exists(f"{accounts}/{service_account}"):
            self.api.request("POST", accounts, {"metadata": {"name": service_account}})
        token = self.api.create_token(namespace, service_account, expiration_seconds)
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
        return run_tool(
            self.tools_dir,
            tool,
            args,
            env=self.env(kubeconfig),
            input=input,
            check=check,
            timeout=timeout,
        )

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
