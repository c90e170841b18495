"""A real Kubernetes node on this machine, joined to a ControlPlane: containerd and runc from
Debian, kubelet and kube-proxy (tools/k8s), CoreDNS (tools/coredns), images built here
(scripts/images.sh). Pods run in real containers with the chart's securityContext enforced.

Why not a fake node: the chart's probes, securityContext, Services, DNS, the bundled
PostgreSQL StatefulSet and the image itself only meet reality on a real kubelet.

The network is made by this module and nothing else is touched: a bridge ``stepwise0`` whose
address NODE_IP is the node's address, the API server's bind and advertise address and the
cluster DNS address; pods get addresses from POD_CIDR on it and a route to the Service range
only. Nothing binds 0.0.0.0 or the machine's own interface address. The kubelet authenticates
to the API server, and the API server to the kubelet, by client certificate.

One node per machine (the bridge, the ports and iptables are host-wide): ``Node.start`` takes
an exclusive lock on LOCK_FILE and cleans up what a killed predecessor left, ``stop`` removes
everything, iptables chains included. Needs root. Used by ``tests/e2e`` (one node per session)
and ``scripts/dev_cluster.py``.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import json
import os
import shlex
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import IO, Any

from harness import nodeconfig, processes
from harness.controlplane import SERVICE_CIDR, ControlPlane
from harness.errors import ApiError, ControlPlaneError
from harness.nodeconfig import (
    BRIDGE,
    CHAIN_PREFIXES,
    CLUSTER_DOMAIN,
    DEV_CLUSTER,
    KUBELET_DIR,
    LOCK_FILE,
    NETNS_DIR,
    NODE_IP,
    NODE_NAME,
    POD_CIDR,
    POD_LOGS_DIR,
    RUN_DIR,
    STATE_DIR,
    VOLUMES,
)
from harness.processes import free_port, spawn, wait_until
from harness.tools import REPO_ROOT, cache_dir

CRI_SERVING = "Start streaming server"
"""What containerd 1.6's CRI plugin logs last before it marks itself initialized."""


class NodeError(ControlPlaneError):
    """The node could not start (or is held by another user of this machine)."""


def _run(*args: str, check: bool = True, input: str | None = None) -> str:  # noqa: A002
    result = subprocess.run(args, capture_output=True, text=True, input=input, check=False)
    if check and result.returncode != 0:
        raise NodeError(f"`{' '.join(args)}` failed: {(result.stderr or result.stdout).strip()}")
    return result.stdout


def images() -> dict[str, tuple[str, Path]]:
    """Build what is missing (``scripts/images.sh``); name → (image ref, docker-archive)."""
    out = _run("bash", str(REPO_ROOT / "scripts" / "images.sh"))
    found: dict[str, tuple[str, Path]] = {}
    for line in out.splitlines():
        name, ref, archive = line.split()
        found[name] = (ref, Path(archive))
    return found


class Node:
    """The node's processes and host state. ``prepare`` (bridge, lock) comes before the
    ControlPlane starts, since the API server binds NODE_IP; ``join`` after it."""

    def __init__(self, workdir: Path, *, die_with_parent: bool = True) -> None:
        self.workdir = workdir
        self.die_with_parent = die_with_parent
        self.holder = f"test session, pid {os.getpid()}" if die_with_parent else DEV_CLUSTER
        self.images: dict[str, tuple[str, Path]] = {}
        self.children: list[subprocess.Popen[bytes]] = []
        self.ports: dict[str, int] = {}
        self._lock: IO[str] | None = None
        self._plane: ControlPlane | None = None

    @property
    def plane(self) -> ControlPlane:
        if self._plane is None:
            raise NodeError("the node has not joined a control plane")
        return self._plane

    @property
    def containerd_socket(self) -> Path:
        return RUN_DIR / "containerd.sock"

    def log(self, name: str) -> Path:
        return self.workdir / "logs" / f"{name}.log"

    # ---- lifecycle ----

    def prepare(self, lock_timeout: float = 1800.0) -> None:
        """Root check, the machine-wide lock, leftovers of a killed node removed, the bridge."""
        if os.geteuid() != 0:
            raise NodeError(
                "the test node needs root (containerd, the kubelet, a bridge, iptables): "
                "run as root, e.g. `sudo make dev-cluster`"
            )
        self._take_lock(lock_timeout)
        cleanup()
        self.images = images()
        for path in (self.workdir / "logs", self.workdir / "volumes", RUN_DIR, KUBELET_DIR):
            path.mkdir(parents=True, exist_ok=True)
        for key, value in (
            ("net/ipv4/ip_forward", "1"),
            ("net/bridge/bridge-nf-call-iptables", "1"),
        ):
            Path("/proc/sys", key).write_text(value)
        _run("ip", "link", "add", BRIDGE, "type", "bridge")
        _run("ip", "addr", "add", f"{NODE_IP}/{POD_CIDR.split('/')[1]}", "dev", BRIDGE)
        _run("ip", "link", "set", BRIDGE, "up")
        # The host reaches Services (kube-proxy's DNAT) from NODE_IP, not from its own address.
        _run("ip", "route", "add", SERVICE_CIDR, "dev", BRIDGE, "src", NODE_IP)

    def join(self, plane: ControlPlane) -> None:
        """containerd, the images, kubelet, kube-proxy, CoreDNS; until the Node is Ready."""
        self._plane = plane
        self._grant_cluster_roles()
        self._start_containerd()
        self._import_images()
        self._start_kubelet()
        self._start_kube_proxy()
        self._start_coredns()
        self._create_volumes()
        wait_until(self._ready, timeout=120, what=f"node {NODE_NAME} to be Ready")

    def stop(self) -> None:
        """Pods stopped by the kubelet (so CNI releases their addresses), then every process,
        mount, network namespace, iptables chain and the bridge; the lock released last. A node
        that did not get the lock has nothing to stop: the host's node is someone else's."""
        if self._lock is None:
            return
        if self._plane is not None and self.children:
            with contextlib.suppress(Exception):
                drain(self.plane, timeout=60)
        children, self.children = self.children, []
        for child in reversed(children):
            processes.stop(child, timeout=15)
        cleanup()
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def detach(self) -> dict[str, Any]:
        """What ``scripts/dev_cluster.py down`` needs later; the processes keep running."""
        pids = [[child.pid, str(child.args[0])] for child in reversed(self.children)]  # type: ignore[index]
        for child in self.children:
            child.returncode = 0  # no "still running" ResourceWarning: it is meant to
        self.children = []
        return {"pids": pids, "workdir": str(self.workdir)}

    # ---- pieces ----

    def _take_lock(self, timeout: float) -> None:
        """Wait for another test session's node to go; a dev cluster is reported at once.
        containerd inherits the lock, so a detached node (the dev cluster) keeps holding it."""
        lock = LOCK_FILE.open("a+")
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = LOCK_FILE.read_text().strip()
                if holder == DEV_CLUSTER or time.monotonic() > deadline:
                    lock.close()
                    raise NodeError(
                        f"the node of this machine is taken ({holder}, lock {LOCK_FILE}); "
                        "a dev cluster stops with `make dev-cluster-down`"
                    ) from None
                time.sleep(1)
        lock.truncate(0)
        lock.write(self.holder)
        lock.flush()
        self._lock = lock

    def _spawn(self, executable: Path | str, args: list[str]) -> None:
        name = Path(executable).name
        child = spawn(
            [str(executable), *args],
            self.log(name),
            cwd=self.workdir,
            die_with_parent=self.die_with_parent,
            pass_fds=() if self.children or self._lock is None else (self._lock.fileno(),),
        )
        self.children.append(child)
        if child.poll() is not None:
            raise NodeError(f"{name} exited at once; see {self.log(name)}")

    def _cert(self, name: str, subject: str, *, serving: bool = False) -> tuple[Path, Path]:
        sans = [f"IP:{NODE_IP}", f"DNS:{NODE_NAME}"] if serving else []
        return self.plane.pki.issue_certificate(name, subject, client=True, sans=sans)

    def _kubeconfig(self, name: str, user: str, cert: tuple[Path, Path]) -> Path:
        return self.plane.write_kubeconfig(
            self.workdir / f"{name}.kubeconfig", user, client_cert=cert
        )

    def _grant_cluster_roles(self) -> None:
        """RBAC the API server's kubelet client and CoreDNS need (the rest is bootstrapped)."""
        self.plane.apply(
            nodeconfig.CLUSTER_ROLES.replace("$COREDNS_USER", "stepwise:coredns").replace(
                "$KUBELET_CLIENT", "kube-apiserver-kubelet-client"
            )
        )

    def _start_containerd(self) -> None:
        state = cache_dir() / "node" / "containerd"
        state.mkdir(parents=True, exist_ok=True)
        (RUN_DIR / "cni").mkdir(exist_ok=True)
        (RUN_DIR / "cni" / "10-stepwise.conflist").write_text(json.dumps(nodeconfig.cni_config()))
        config = self.workdir / "containerd.toml"
        config.write_text(
            nodeconfig.CONTAINERD_CONFIG.format(
                root=state,
                state=RUN_DIR / "containerd",
                socket=self.containerd_socket,
                pause=self.images["stepwise-pause"][0],
                cni_conf=RUN_DIR / "cni",
            )
        )
        self._spawn(shutil.which("containerd") or "containerd", ["--config", str(config)])
        wait_until(
            lambda: self.ctr("version", check=False) and True,
            timeout=60,
            what="containerd to answer",
        )
        # containerd answers before its CRI plugin has recovered the state of earlier pods (a
        # second or more with a warm state dir); a kubelet started then exits at once ("server
        # is not initialized yet"). The plugin logs this line just before it starts serving.
        wait_until(
            lambda: CRI_SERVING in self.log("containerd").read_text(errors="replace"),
            timeout=120,
            what="containerd's CRI plugin to serve",
        )

    def container_pid(self, container_id: str) -> int:
        """The host pid of a container's first process (``containerd://<id>`` or ``<id>``)."""
        wanted = container_id.removeprefix("containerd://")
        for line in self.ctr("tasks", "ls").splitlines()[1:]:
            task, pid, *_ = line.split()
            if task == wanted:
                return int(pid)
        raise NodeError(f"no running task for container {wanted}")

    def ctr(self, *args: str, check: bool = True) -> str:
        """``ctr`` against this node's containerd, in the kubelet's namespace."""
        return _run(
            "ctr", "--address", str(self.containerd_socket), "-n", "k8s.io", *args, check=check
        )

    def _import_images(self) -> None:
        """Import the images containerd does not have yet (a warm node has them all)."""
        present = set(self.ctr("images", "ls", "-q").split())
        for ref, archive in self.images.values():
            if ref not in present:
                self.ctr("images", "import", str(archive))

    def _start_kubelet(self) -> None:
        plane = self.plane
        cert = self._cert("kubelet", f"/CN=system:node:{NODE_NAME}/O=system:nodes", serving=True)
        kubeconfig = self._kubeconfig("kubelet", f"system:node:{NODE_NAME}", cert)
        self.ports["kubelet-healthz"] = free_port()
        config = self.workdir / "kubelet.json"
        config.write_text(
            json.dumps(
                nodeconfig.kubelet_config(
                    plane.ca_file, cert, self.ports["kubelet-healthz"], self.containerd_socket
                )
            )
        )
        self._spawn(
            str(plane.tools_dir / "kubelet"),
            [
                f"--config={config}",
                f"--kubeconfig={kubeconfig}",
                f"--root-dir={KUBELET_DIR}",
                f"--hostname-override={NODE_NAME}",
                f"--node-ip={NODE_IP}",
                "--v=1",
            ],
        )

    def _start_kube_proxy(self) -> None:
        cert = self._cert("kube-proxy", "/CN=system:kube-proxy")
        kubeconfig = self._kubeconfig("kube-proxy", "system:kube-proxy", cert)
        healthz = self.ports["kube-proxy-healthz"] = free_port()
        config = self.workdir / "kube-proxy.json"
        config.write_text(
            json.dumps(
                {
                    "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
                    "kind": "KubeProxyConfiguration",
                    "clientConnection": {"kubeconfig": str(kubeconfig)},
                    "mode": "iptables",
                    "hostnameOverride": NODE_NAME,
                    "clusterCIDR": POD_CIDR,
                    "healthzBindAddress": f"127.0.0.1:{healthz}",
                    "metricsBindAddress": f"127.0.0.1:{free_port()}",
                    "nodePortAddresses": [f"{NODE_IP}/32"],
                    # Leave the host's conntrack sysctls alone.
                    "conntrack": {
                        "maxPerCore": 0,
                        "min": 0,
                        "tcpEstablishedTimeout": "0s",
                        "tcpCloseWaitTimeout": "0s",
                    },
                }
            )
        )
        self._spawn(str(self.plane.tools_dir / "kube-proxy"), [f"--config={config}", "--v=1"])

    def _start_coredns(self) -> None:
        cert = self._cert("coredns", "/CN=stepwise:coredns")
        kubeconfig = self._kubeconfig("coredns", "stepwise:coredns", cert)
        ready = self.ports["coredns-ready"] = free_port()
        corefile = self.workdir / "Corefile"
        corefile.write_text(
            f".:53 {{\n  bind {NODE_IP}\n  errors\n  ready 127.0.0.1:{ready}\n"
            f"  health 127.0.0.1:{free_port()}\n"
            f"  kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{\n"
            f"    kubeconfig {kubeconfig} stepwise:coredns\n"
            "    pods insecure\n    fallthrough in-addr.arpa ip6.arpa\n    ttl 5\n  }\n"
            "  cache 5\n}\n"
        )
        self._spawn(str(self.plane.tools_dir / "coredns"), ["-conf", str(corefile)])

    def _create_volumes(self) -> None:
        """A default StorageClass and a pool of local PersistentVolumes on this node."""
        self.plane.apply(nodeconfig.STORAGE_CLASS_MANIFEST)
        for index in range(VOLUMES):
            path = self.workdir / "volumes" / f"pv-{index}"
            path.mkdir(exist_ok=True)
            path.chmod(0o777)
            self.plane.apply(json.dumps(nodeconfig.volume(f"{NODE_NAME}-pv-{index}", path)))

    def recycle_volumes(self) -> None:
        """Released volumes (their claim was deleted) are wiped and made Available again."""
        pvs = self.plane.kubectl_json("get", "pv")["items"]
        for pv in pvs:
            if pv["status"].get("phase") != "Released" or not pv["metadata"]["name"].startswith(
                NODE_NAME
            ):
                continue
            path = Path(pv["spec"]["local"]["path"])
            shutil.rmtree(path, ignore_errors=True)
            path.mkdir()
            path.chmod(0o777)
            self.plane.kubectl(
                "patch", "pv", pv["metadata"]["name"], "--type=json",
                "-p", '[{"op":"remove","path":"/spec/claimRef"}]',
            )  # fmt: skip

    def _ready(self) -> bool:
        try:
            node = self.plane.api.request("GET", f"/api/v1/nodes/{NODE_NAME}")
        except ApiError:
            return False
        conditions = {c["type"]: c["status"] for c in node["status"].get("conditions", [])}
        ready_dns = _get(f"http://127.0.0.1:{self.ports['coredns-ready']}/ready")
        return conditions.get("Ready") == "True" and ready_dns == "OK"


def drain(plane: ControlPlane, timeout: float) -> None:
    """Cordon the node, delete its pods (short grace) and wait until the kubelet has stopped
    them all, so that CNI releases their addresses and nothing is left in a container. The
    replacements their controllers make stay Pending."""
    on_node = ("-A", f"--field-selector=spec.nodeName={NODE_NAME}")
    plane.kubectl("cordon", NODE_NAME)
    plane.kubectl("delete", "pods", *on_node, "--grace-period=1", "--wait=false")
    wait_until(
        lambda: not plane.kubectl_json("get", "pods", *on_node)["items"],
        timeout=timeout,
        what="the kubelet to stop every pod",
    )


def _get(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            body: bytes = response.read()
    except OSError:
        return ""
    return body.decode().strip()


# ---- cleanup (also of a node whose owner was killed) ------------------------------------------


def cleanup() -> None:
    """Remove everything a node leaves on the host; safe to run when nothing is there."""
    socket = str(RUN_DIR / "containerd.sock")
    for pid in _pids_mentioning(socket):  # containerd's shims (they outlive containerd)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, 9)
    for pid in _pids_in_cgroup("kubepods"):  # the containers' processes
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, 9)
    _unmount_under(RUN_DIR, STATE_DIR)
    for netns in NETNS_DIR.glob("cni-*"):
        _run("umount", str(netns), check=False)
        netns.unlink(missing_ok=True)
    if Path(f"/sys/class/net/{BRIDGE}").exists():
        _run("ip", "link", "delete", BRIDGE, check=False)
    _remove_chains()
    for path in (RUN_DIR, KUBELET_DIR, POD_LOGS_DIR):
        shutil.rmtree(path, ignore_errors=True)


def _pids_mentioning(word: str) -> list[int]:
    pids = []
    for proc in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError):
            if word.encode() in (proc / "cmdline").read_bytes():
                pids.append(int(proc.name))
    return [pid for pid in pids if pid != os.getpid()]


def _pids_in_cgroup(name: str) -> list[int]:
    """Processes in the kubelet's pod cgroups (cgroup v1 ``pids`` hierarchy)."""
    root = Path("/sys/fs/cgroup/pids") / name
    pids: list[int] = []
    if root.is_dir():
        for procs in root.rglob("cgroup.procs"):
            with contextlib.suppress(OSError, ValueError):
                pids += [int(line) for line in procs.read_text().split()]
    return pids


def _unmount_under(*roots: Path) -> None:
    """Unmount (deepest first) every mount below ``roots``: rootfs overlays, shm, secrets."""
    prefixes = tuple(str(root.resolve()) + "/" for root in roots)
    mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    for target in sorted({m for m in mounts if m.startswith(prefixes)}, key=len, reverse=True):
        _run("umount", "-l", target, check=False)


def _remove_chains() -> None:
    """Jumps to, then the chains KUBE-* and CNI-* in every table of iptables and ip6tables."""
    for tool in ("iptables", "ip6tables"):
        if shutil.which(tool) is None:
            continue
        for table in ("filter", "nat", "mangle", "raw"):
            rules = _run(tool, "-w", "-t", table, "-S", check=False).splitlines()
            chains = [r.split()[1] for r in rules if r.startswith("-N ")]
            ours = [c for c in chains if c.startswith(CHAIN_PREFIXES)]
            for rule in rules:
                parts = shlex.split(rule)  # comments are quoted
                if parts[:1] == ["-A"] and parts[1] not in ours and _jumps_to_ours(parts):
                    _run(tool, "-w", "-t", table, "-D", *parts[1:], check=False)
            for chain in ours:
                _run(tool, "-w", "-t", table, "-F", chain, check=False)
            for chain in ours:
                _run(tool, "-w", "-t", table, "-X", chain, check=False)


def _jumps_to_ours(parts: list[str]) -> bool:
    return any(
        flag in ("-j", "-g") and target.startswith(CHAIN_PREFIXES)
        for flag, target in itertools.pairwise(parts)
    )
