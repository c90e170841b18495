"""Faults on a real node, in order on one release (two workers, the bundled PostgreSQL): the
worker container's process SIGKILLed, a rolling ``helm upgrade`` to a new image tag, an
eviction through the Eviction API, the operator pod killed, the PostgreSQL pod killed under
load; then ``helm uninstall``. After each one every run succeeds and no completed step runs
again, counted by the marks each step execution leaves on a hostPath (``workflows.py``), not
by what the database says.
"""

from __future__ import annotations

from typing import Any

import pytest

from harness.errors import ApiError
from harness.kubeapi import mapping_get
from tests.e2e.release import CRD, NodeCluster, Release, merge

pytestmark = [pytest.mark.kube, pytest.mark.slow, pytest.mark.timeout(900)]

SHORT_LEASE = 10
# After the upgrade: a lease far longer than any wait below, so a run that moves to another
# worker in time was handed over, not reclaimed after an expiry.
LONG_LEASE = 600
WORKFLOW = "e2e-parallel"


@pytest.fixture(scope="module")
def release(node_cluster: NodeCluster, namespace: str) -> Release:
    release = Release(node_cluster, namespace)
    values = merge(node_cluster.image_values(), release.marks_values())
    values = merge(
        values,
        {
            "worker": {
                "leaseSeconds": SHORT_LEASE,
                "shutdownGraceSeconds": 10,
                "readinessProbe": {"periodSeconds": 1},
            }
        },
    )
    release.helm("install", values)
    return release


def _started(release: Release, name: str, steps: set[str]) -> Any:
    """Wait until the run's ``steps`` have all started; its marks."""
    release.wait(lambda: mapping_get(release.wfr(name), "status.runId"), f"{name}'s run id")
    marks = release.marks(name)
    release.wait(lambda: set(marks.started()) >= steps, f"{name}'s steps {sorted(steps)} to start")
    return marks


def _succeeded(
    release: Release, names: list[str], steps: int, timeout: float = 180, exactly_once: bool = True
) -> None:
    """Every run succeeded and the status says so; with ``exactly_once`` each step also ended
    exactly once (a completed step never ran again)."""
    release.wait(
        lambda: all(release.phase(name) == "Succeeded" for name in names),
        f"{', '.join(names)} to succeed",
        timeout=timeout,
    )
    for name in names:
        done = release.marks(name).done()
        assert set(done) == {f"slow-{i}" for i in range(steps)}, (name, done)
        if exactly_once:
            assert set(done.values()) == {1}, (name, done)
        assert release.wfr(name)["status"]["steps"] == f"{steps}/{steps}"


def _stored(release: Release, name: str) -> set[str]:
    """The steps whose completion the database holds (the status mirrors it)."""
    details = release.wfr(name)["status"].get("stepDetails") or []
    return {step["name"] for step in details if step["state"] == "Completed"}


def _pod_of(process: str) -> str:
    """The pod a ``<pod name>-<random>`` process of workflows.py ran in."""
    return process.rsplit("-", 1)[0]


def test_sigkill_of_the_worker_process_mid_run(release: Release) -> None:
    durations = [0.5, 0.5, 1.0, 8.0, 8.0, 8.0]
    short, long = {"slow-0", "slow-1", "slow-2"}, {"slow-3", "slow-4", "slow-5"}
    release.start("crash", durations)
    marks = _started(release, "crash", short | long)
    release.wait(lambda: set(marks.done()) >= short, "the short steps to complete")
    assert not set(marks.done()) & long, "a long step ended before the kill: lengthen it"
    (process,) = marks.processes("slow-3")
    pod = _pod_of(process)
    restarts = release.pod(pod)["status"]["containerStatuses"][0]["restartCount"]

    release.kill(pod, "worker")

    release.wait(
        lambda: release.pod(pod)["status"]["containerStatuses"][0]["restartCount"] > restarts,
        "the kubelet to restart the killed container in its pod",
    )
    _succeeded(release, ["crash"], len(durations))
    for step in short:  # completed before the kill: ran once, in the killed process
        assert marks.started()[step] == 1
        assert marks.processes(step) == {process}
    for step in long:  # cut off by the kill: ran again, elsewhere, to completion
        assert marks.started()[step] == 2
        assert process not in marks.processes(step, "done")
    assert release.wfr("crash")["status"]["claims"] >= 2


def test_helm_upgrade_to_a_new_image_tag_mid_runs(
    release: Release, node_cluster: NodeCluster
) -> None:
    old = node_cluster.node.images["stepwise-e2e"][0]
    new = f"{old}-next"
    node_cluster.node.ctr("images", "tag", "--force", old, new)
    names = [f"upgrade-{i}" for i in range(4)]
    for name in names:
        release.start(name, [1.0, 1.0, 5.0, 5.0])
    for name in names:
        _started(release, name, {"slow-0"})

    values = merge(release.cluster.image_values(), release.marks_values())
    values = merge(values, {"worker": {"image": new, "leaseSeconds": LONG_LEASE}})
    release.helm("upgrade", values, "--reuse-values")

    _succeeded(release, names, 4)
    workers = release.ready_pods("worker")
    assert len(workers) == 2
    for pod in workers:
        assert release.pod(pod)["spec"]["containers"][0]["image"] == new
    history = release.plane.helm("history", release.name, "-n", release.ns, "-o", "json")
    assert '"status":"superseded"' in history.stdout.replace(" ", "")


def _evict(release: Release, pod: str) -> None:
    release.plane.api.request(
        "POST",
        f"/api/v1/namespaces/{release.ns}/pods/{pod}/eviction",
        {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": pod}},
    )


def test_eviction_respects_the_pdb_and_hands_runs_over(release: Release) -> None:
    pdb = f"{release.fullname}-worker"
    path = f"/apis/policy/v1/namespaces/{release.ns}/poddisruptionbudgets/{pdb}"
    release.wait(
        lambda: release.plane.api.request("GET", path)["status"].get("disruptionsAllowed") == 1,
        "the PDB to allow one disruption",
    )
    # The long steps outlast the worker's shutdown grace (10 s): it must hand the run over.
    release.start("evict", [0.5, 0.5, 30.0, 30.0])
    marks = _started(release, "evict", {"slow-0", "slow-1", "slow-2", "slow-3"})
    release.wait(lambda: set(marks.done()) >= {"slow-0", "slow-1"}, "the short steps")
    (process,) = marks.processes("slow-2")
    evicted = _pod_of(process)
    (other,) = set(release.ready_pods("worker")) - {evicted}

    _evict(release, evicted)
    with pytest.raises(ApiError) as refused:  # a drain stops here until a replacement is ready
        _evict(release, other)
    assert refused.value.status == 429, refused.value

    # SIGTERM: after its grace the worker released the run; with a lease of LONG_LEASE
    # seconds the run can only finish within this wait if it was handed over.
    _succeeded(release, ["evict"], 4, timeout=LONG_LEASE / 4)
    assert release.wfr("evict")["status"]["claims"] == 2
    for step in ("slow-0", "slow-1"):
        assert marks.started()[step] == 1, step
    for step in ("slow-2", "slow-3"):  # cut off by the shutdown, finished by the other worker
        assert marks.started()[step] == 2, step
        assert {_pod_of(p) for p in marks.processes(step, "done")} != {evicted}


def test_operator_killed_mid_run(release: Release) -> None:
    release.start("operator-kill", [1.0, 1.0, 8.0, 8.0])
    _started(release, "operator-kill", {"slow-2", "slow-3"})
    run_id = release.wfr("operator-kill")["status"]["runId"]
    runs = release.runs_in_database(WORKFLOW)
    (operator,) = release.ready_pods("operator")

    release.plane.kubectl(
        "delete", "pod", operator, "-n", release.ns, "--grace-period=0", "--force"
    )

    release.wait(
        lambda: (ready := release.ready_pods("operator")) and operator not in ready,
        "the Deployment's new operator pod to be ready",
    )
    _succeeded(release, ["operator-kill"], 4)
    assert release.wfr("operator-kill")["status"]["runId"] == run_id
    assert release.runs_in_database(WORKFLOW) == runs, "the new operator started a second run"


def test_postgresql_killed_mid_load(release: Release) -> None:
    names = [f"load-{i}" for i in range(6)]
    for name in names:
        release.start(name, [0.5, 1.0, 6.0, 6.0])
    release.wait(
        lambda: all(_stored(release, name) >= {"slow-0", "slow-1"} for name in names),
        "the short steps of every run to be stored",
    )
    stored = {name: _stored(release, name) for name in names}
    database = f"{release.fullname}-postgresql-0"
    before = release.pod(database)
    (claim,) = release.plane.kubectl_json("get", "pvc", "-n", release.ns)["items"]

    # A crash (SIGKILL, as the OOM killer does), then the pod goes: the StatefulSet makes a
    # new one on the same claim, once the kubelet has stopped the old one.
    release.kill(database, "postgresql")
    release.plane.kubectl("delete", "pod", database, "-n", release.ns, "--grace-period=1")

    release.wait(
        lambda: (
            release.ready_pods("postgresql") == [database]
            and release.pod(database)["metadata"]["uid"] != before["metadata"]["uid"]
        ),
        "the StatefulSet's new PostgreSQL pod to be ready",
    )
    volumes = [v for v in release.pod(database)["spec"]["volumes"] if v["name"] == "data"]
    assert volumes[0]["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    # Steps whose result was not stored when the database went may run again (at least
    # once); a stored one never does.
    _succeeded(release, names, 4, timeout=240, exactly_once=False)
    for name in names:
        started = release.marks(name).started()
        assert {step: started[step] for step in stored[name]} == dict.fromkeys(stored[name], 1)


def test_uninstall_keeps_the_crd_and_the_workflow_runs(release: Release) -> None:
    names = release.plane.kubectl("get", "wfr", "-n", release.ns, "-o", "name").stdout.split()
    release.plane.helm("uninstall", release.name, "-n", release.ns, "--wait", "--timeout", "180s")
    release.wait(
        lambda: not release.plane.kubectl_json("get", "pods", "-n", release.ns)["items"],
        "the kubelet to stop the chart's pods",
    )
    assert release.plane.kubectl_json("get", "deployments", "-n", release.ns)["items"] == []
    # Kept: the CRD, the WorkflowRuns, and the database's claim (as NOTES.txt says).
    release.plane.kubectl("get", "crd", CRD)
    (claim,) = release.plane.kubectl_json("get", "pvc", "-n", release.ns)["items"]
    assert claim["status"]["phase"] == "Bound"
    left = release.plane.kubectl("get", "wfr", "-n", release.ns, "-o", "name").stdout.split()
    assert sorted(left) == sorted(names)
