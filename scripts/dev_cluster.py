"""A local one-node Kubernetes cluster for a developer: the same one the end-to-end tests
use (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, and a real node: containerd,
kubelet, kube-proxy, CoreDNS; see harness/node.py), left running. Needs root.

    sudo python scripts/dev_cluster.py up       # start (or show the running one)
    sudo python scripts/dev_cluster.py status   # is it up? (exit 1 if not)
    sudo python scripts/dev_cluster.py down     # stop it; remove its bridge, mounts, iptables

State lives in ``${STEPWISE_CACHE:-~/.cache/stepwise}/dev-cluster/`` (state.json, the
kubeconfig, certificates and logs). The data is throwaway: ``down`` then ``up`` gives an
empty cluster. The images built here (scripts/images.sh) are on the node already.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import ssl
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from harness.controlplane import ControlPlane  # noqa: E402 - needs the repo on sys.path
from harness.errors import ControlPlaneError  # noqa: E402
from harness.node import Node, cleanup, drain  # noqa: E402
from harness.nodeconfig import NODE_IP  # noqa: E402
from harness.processes import pid_runs, stop_pids  # noqa: E402
from harness.tools import cache_dir  # noqa: E402


def state_dir() -> Path:
    return cache_dir() / "dev-cluster"


def _load_state() -> dict[str, Any] | None:
    try:
        state: dict[str, Any] = json.loads((state_dir() / "state.json").read_text())
    except (OSError, ValueError):
        return None
    return state


def _running(state: dict[str, Any]) -> bool:
    return all(pid_runs(pid, exe) for pid, exe in state["pids"])


def _print_usage(state: dict[str, Any]) -> None:
    print(f"API server: {state['server']}")
    print(f"logs:       {Path(state['workdir']) / 'logs'}")
    print("use it with:")
    print(f"export KUBECONFIG={state['kubeconfig']}")
    print(f'export PATH="{state["bin_dir"]}:$PATH"   # the matching kubectl and helm')
    print("images built here (for --set image.repository=… / worker.image=…):")
    for name, ref in state.get("images", {}).items():
        print(f"  {name:<20} {ref}")


def up() -> int:
    if os.geteuid() != 0:
        print(
            "the dev cluster runs a real node (containerd, kubelet, a bridge, iptables) and "
            "needs root: run `sudo make dev-cluster`",
            file=sys.stderr,
        )
        return 1
    state = _load_state()
    if state is not None:
        if _running(state):
            print("the dev cluster is already up")
            _print_usage(state)
            return 0
        print("a previous dev cluster is gone or half-dead: cleaning it up", file=sys.stderr)
        down(quiet=True)
    workdir = state_dir() / "run"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    node = Node(workdir / "node", die_with_parent=False)
    plane = ControlPlane(
        workdir, controllers=True, scheduler=True, die_with_parent=False, node_ip=NODE_IP
    )
    try:
        node.prepare(lock_timeout=0)
        plane.start()
        node.join(plane)
    except (ControlPlaneError, OSError, subprocess.SubprocessError, TimeoutError) as exc:
        node.stop()
        plane.stop()
        print(f"could not start the dev cluster: {exc}", file=sys.stderr)
        return 1
    images = {name: ref for name, (ref, _) in node.images.items()}
    node_pids = node.detach()["pids"]
    state = plane.detach()
    state["pids"] = node_pids + state["pids"]  # the node stops first
    state["images"] = images
    (state_dir() / "state.json").write_text(json.dumps(state, indent=2) + "\n")
    print("the dev cluster is up")
    _print_usage(state)
    return 0


def status() -> int:
    state = _load_state()
    if state is None:
        print("the dev cluster is down")
        return 1
    if not _running(state):
        print("the dev cluster is half-dead (some processes exited): run `down`, then `up`")
        return 1
    plane_ok = _ready(state)
    print("the dev cluster is up" + ("" if plane_ok else " but /readyz does not answer ok"))
    _print_usage(state)
    return 0 if plane_ok else 1


def _ready(state: dict[str, Any]) -> bool:
    context = ssl.create_default_context(cafile=str(Path(state["workdir"]) / "pki" / "ca.crt"))
    try:
        with urllib.request.urlopen(state["server"] + "/readyz", context=context, timeout=5) as r:
            return bool(r.read().strip() == b"ok")
    except OSError:
        return False


def down(quiet: bool = False) -> int:
    state = _load_state()
    if state is not None:
        if _running(state):
            plane = ControlPlane(Path(state["workdir"]), bin_dir=Path(state["bin_dir"]))
            with contextlib.suppress(Exception):
                drain(plane, timeout=60)
        stop_pids([(int(pid), str(exe)) for pid, exe in state["pids"]], timeout=15)
    cleanup()  # also after a crash: containers, mounts, the bridge, iptables chains
    shutil.rmtree(state_dir(), ignore_errors=True)
    if not quiet:
        print("the dev cluster is down" if state else "no dev cluster was running")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("command", choices=["up", "down", "status"])
    args = parser.parse_args(argv)
    if args.command == "up":
        return up()
    if args.command == "status":
        return status()
    return down()


if __name__ == "__main__":
    sys.exit(main())
