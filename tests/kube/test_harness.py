"""The harness itself: it fails loudly without binaries, reports the real version, and leaves
no process behind, whether stopped, detached and stopped by pid, or orphaned by a SIGKILL."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from harness.controlplane import ControlPlane
from harness.errors import ControlPlaneError
from harness.processes import stop_pids, wait_until
from harness.tools import REPO_ROOT, cache_dir, default_bin_dir, read_versions


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def test_missing_binaries_name_the_build_script(tmp_path: Path) -> None:
    with pytest.raises(ControlPlaneError, match=r"bash scripts/k8s-tools\.sh"):
        ControlPlane(bin_dir=tmp_path).start()


def test_fixture_fails_instead_of_skipping(tmp_path: Path) -> None:
    (tmp_path / "test_uses_kube.py").write_text(
        "def test_needs_cluster(kube):\n    pass\n", encoding="utf-8"
    )
    result = subprocess.run(
        [
            sys.executable, "-m", "pytest", "-p", "tests.plugins.kube", "-o", "addopts=",
            "-p", "no:cacheprovider", "-q", str(tmp_path / "test_uses_kube.py"),
        ],
        cwd=REPO_ROOT,
        env={**os.environ, "STEPWISE_CACHE": str(tmp_path / "empty-cache")},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "1 error" in output
    assert "skipped" not in output
    assert "bash scripts/k8s-tools.sh" in output


@pytest.mark.kube
def test_stop_and_detach_leave_no_process() -> None:
    plane = ControlPlane(controllers=False, scheduler=False).start()
    try:
        assert plane.api.request("GET", "/version")["gitVersion"] == read_versions()["KUBE_VERSION"]
        pids = plane.pids()
        workdir = plane.root
    finally:
        plane.stop()
    assert not [name for name, pid in pids.items() if _alive(pid)]
    assert not workdir.exists()

    # The dev-cluster path: detach, then stop by the recorded pids from "another process".
    plane = ControlPlane(controllers=False, scheduler=False, die_with_parent=False).start()
    state = plane.detach()
    try:
        assert all(_alive(pid) for pid, _ in state["pids"])
        stop_pids([(pid, exe) for pid, exe in state["pids"]])
        assert not [pid for pid, _ in state["pids"] if _alive(pid)]
    finally:
        shutil.rmtree(state["workdir"], ignore_errors=True)


@pytest.mark.kube
def test_children_die_with_a_killed_parent() -> None:
    """A SIGKILLed test run cannot clean up; the parent-death signal must do it."""
    script = textwrap.dedent(
        """
        import json, sys, time
        from harness.controlplane import ControlPlane
        plane = ControlPlane(controllers=False, scheduler=False).start()
        print(json.dumps({"pids": plane.pids(), "workdir": str(plane.root)}), flush=True)
        time.sleep(120)
        """
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True
    )
    workdir = None
    try:
        assert parent.stdout is not None
        started = json.loads(parent.stdout.readline())
        workdir = started["workdir"]
        pids = list(started["pids"].values())
        assert all(_alive(pid) for pid in pids)
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        wait_until(
            lambda: not any(_alive(pid) for pid in pids),
            timeout=20,
            what="the orphaned etcd and kube-apiserver to exit",
        )
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        if parent.stdout is not None:
            parent.stdout.close()
        if workdir:
            shutil.rmtree(workdir, ignore_errors=True)


@pytest.mark.kube
def test_dev_cluster_up_status_down(tmp_path: Path) -> None:
    """``make dev-cluster`` / ``make dev-cluster-down`` in a private cache dir."""
    (tmp_path / default_bin_dir().parent.name).mkdir()
    (tmp_path / default_bin_dir().parent.name / "bin").symlink_to(default_bin_dir())
    (tmp_path / "images").symlink_to(cache_dir() / "images")  # built once, not again here
    env = {**os.environ, "STEPWISE_CACHE": str(tmp_path)}

    def dev_cluster(command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(REPO_ROOT / "scripts" / "dev_cluster.py"), command],
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )

    try:
        up = dev_cluster("up")
        assert up.returncode == 0, up.stderr
        exports = [line for line in up.stdout.splitlines() if line.startswith("export KUBECONFIG=")]
        kubeconfig = exports[0].removeprefix("export KUBECONFIG=")
        state = json.loads((tmp_path / "dev-cluster" / "state.json").read_text())
        namespaces = subprocess.run(
            [str(default_bin_dir() / "kubectl"), "get", "namespaces", "-o", "name"],
            env={**env, "KUBECONFIG": kubeconfig, "KUBECACHEDIR": str(tmp_path / "kc")},
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert "namespace/kube-system" in namespaces.stdout.split()
        assert dev_cluster("status").returncode == 0
        assert "already up" in dev_cluster("up").stdout
    finally:
        down = dev_cluster("down")
    assert down.returncode == 0, down.stderr
    assert not [pid for pid, _ in state["pids"] if _alive(pid)]
    assert not (tmp_path / "dev-cluster").exists()
    assert dev_cluster("status").returncode == 1


@pytest.mark.kube
@pytest.mark.timeout(300)
def test_ctrl_c_in_pytest_stops_the_control_plane(tmp_path: Path) -> None:
    """Ctrl-C reaches only pytest (the children have their own session); its teardown stops
    them."""
    pid_file, inner_log = tmp_path / "pids.json", tmp_path / "inner.log"
    (tmp_path / "test_interrupted.py").write_text(
        textwrap.dedent(
            f"""
            import json, pathlib, signal, time

            # Ctrl-C at a terminal always reaches pytest; a run started in the background
            # inherits SIGINT ignored (so Python installs no KeyboardInterrupt for it).
            signal.signal(signal.SIGINT, signal.default_int_handler)

            def test_waits(kube):
                pathlib.Path({str(pid_file)!r}).write_text(json.dumps(kube.pids()))
                time.sleep(120)
            """
        ),
        encoding="utf-8",
    )
    with inner_log.open("wb") as log:  # the child keeps its own copy of the descriptor
        run = subprocess.Popen(
            [
                sys.executable, "-m", "pytest", "-p", "tests.plugins.kube", "-o", "addopts=",
                "-p", "no:cacheprovider", "-q", "-s", str(tmp_path / "test_interrupted.py"),
            ],
            cwd=REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        wait_until(pid_file.exists, timeout=90, what="the control plane in the inner pytest")
        pids = list(json.loads(pid_file.read_text()).values())
        assert len(pids) == 4
        run.send_signal(signal.SIGINT)
        # The teardown stops 4 children, each given up to 10 s after SIGTERM and 10 s more
        # after SIGKILL: 80 s at worst; an idle machine takes 5-10 s. (The inner test sleeps
        # 120 s, so an interrupt that never arrived shows as exit code 0, not 2.)
        try:
            code = run.wait(timeout=120)
        except subprocess.TimeoutExpired:
            alive = [pid for pid in pids if _alive(pid)]
            tail = inner_log.read_text(errors="replace")[-3000:]
            pytest.fail(f"the inner pytest did not exit; children alive: {alive}\n{tail}")
        assert code == 2  # pytest's "interrupted"
        assert not [pid for pid in pids if _alive(pid)]
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
