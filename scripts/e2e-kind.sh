#!/usr/bin/env bash
# The chart's end-to-end scenario on kind, for machines with Docker: build the image, load it
# into a kind cluster, `helm install` (bundled PostgreSQL), apply a WorkflowRun of slow parallel
# steps, kill the worker pod once some steps completed, and check that the run finishes on the
# replacement pod without running the completed steps again; then `helm upgrade` and
# `helm uninstall`.
#
# kind cannot run on this project's test machines (root there lacks CAP_SYS_RESOURCE, so
# privileged containers fail), so this script does not run in `make test`; there the same
# scenarios run on a real kubelet with images built from Debian packages (tests/e2e/).
#
#   bash scripts/e2e-kind.sh                 # KEEP=1 leaves the cluster up afterwards
#
# Needs docker, kind, kubectl and helm on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."

CLUSTER=${CLUSTER:-stepwise-e2e}
TAG=${TAG:-0.2.0}
NS=${NS:-stepwise-e2e}
RELEASE=${RELEASE:-sw}
KEEP=${KEEP:-0}
CONTEXT="kind-${CLUSTER}"
# Three short steps end quickly; three long ones are still running when the worker dies.
DURATIONS='[1, 1, 2, 20, 20, 20]'
SHORT=(slow-0 slow-1 slow-2)

say() { printf '\n==> %s\n' "$*"; }
fail() { printf 'e2e-kind: FAILED: %s\n' "$*" >&2; exit 1; }
k() { kubectl --context "$CONTEXT" -n "$NS" "$@"; }
h() { helm --kube-context "$CONTEXT" -n "$NS" "$@"; }

# wait_for DESCRIPTION SECONDS COMMAND...: poll until COMMAND succeeds.
wait_for() {
  local what=$1 timeout=$2
  shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || fail "timed out after ${timeout}s waiting for ${what}"
    sleep 1
  done
}

for tool in docker kind kubectl helm; do
  command -v "$tool" >/dev/null || fail "$tool is not on PATH"
done

cleanup() {
  if [[ $KEEP == 1 ]]; then
    echo "cluster kept: kubectl --context $CONTEXT -n $NS get wfr"
  else
    kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT

say "kind cluster $CLUSTER"
kind get clusters 2>/dev/null | grep -qx "$CLUSTER" || kind create cluster --name "$CLUSTER" --wait 180s
NODE=$(kind get nodes --name "$CLUSTER" | head -n1)

say "images stepwise:$TAG and stepwise-e2e:$TAG (the test workflow on top)"
docker build -t "stepwise:$TAG" .
docker build -t "stepwise-e2e:$TAG" -f - tests/e2e <<EOF
FROM stepwise:$TAG
COPY workflows.py /app/workflows/e2e.py
ENV STEPWISE_APP=/app/workflows/e2e.py
EOF
kind load docker-image --name "$CLUSTER" "stepwise:$TAG" "stepwise-e2e:$TAG"

say "helm install $RELEASE (bundled PostgreSQL)"
kubectl --context "$CONTEXT" create namespace "$NS" --dry-run=client -o yaml |
  kubectl --context "$CONTEXT" apply -f -
h install "$RELEASE" charts/stepwise \
  --set worker.image="stepwise-e2e:$TAG" \
  --set worker.replicas=1 \
  --set worker.leaseSeconds=5 \
  --set worker.shutdownGraceSeconds=5 \
  --set 'worker.extraEnv[0].name=E2E_MARKS' --set 'worker.extraEnv[0].value=/tmp' \
  --wait --timeout 300s

say "helm test"
h test "$RELEASE" --timeout 120s

say "a WorkflowRun of six parallel steps"
k apply -f - <<EOF
apiVersion: stepwise.dev/v1alpha1
kind: WorkflowRun
metadata:
  name: crash
spec:
  workflow: e2e-parallel
  input: {durations: $DURATIONS}
EOF

phase_is() { [[ $(k get wfr "$1" -o jsonpath='{.status.phase}') == "$2" ]]; }
step_states() {
  k get wfr crash -o jsonpath='{range .status.stepDetails[*]}{.name}={.state}:{.attempts}{"\n"}{end}'
}
short_steps_completed() {
  local states
  states=$(step_states)
  for step in "${SHORT[@]}"; do grep -qx "$step=Completed:1" <<<"$states" || return 1; done
}
wait_for "the short steps to complete" 120 short_steps_completed
step_states
phase_is crash Running || fail "the run is not Running"

say "kill the worker: SIGKILL its container, then delete the pod"
WORKER=$(k get pods -l app.kubernetes.io/component=worker -o jsonpath='{.items[0].metadata.name}')
CONTAINER=$(k get pod "$WORKER" -o jsonpath='{.status.containerStatuses[0].containerID}')
docker exec "$NODE" crictl stop --timeout 0 "${CONTAINER#containerd://}" >/dev/null
k delete pod "$WORKER" --wait=false

replacement_ready() {
  k get pods -l app.kubernetes.io/component=worker \
    -o jsonpath='{range .items[*]}{.metadata.name}={.status.containerStatuses[0].ready}{"\n"}{end}' |
    grep -v "^$WORKER=" | grep -q '=true$'
}
wait_for "a ready replacement worker pod" 180 replacement_ready
wait_for "the run to succeed" 180 phase_is crash Succeeded
k get wfr crash
step_states
for step in "${SHORT[@]}"; do
  step_states | grep -qx "$step=Completed:1" || fail "$step ran again after the crash"
done
(($(k get wfr crash -o jsonpath='{.status.claims}') >= 2)) || fail "the run was not claimed again"

say "helm upgrade: two workers"
h upgrade "$RELEASE" charts/stepwise --reuse-values --set worker.replicas=2 --wait --timeout 300s
[[ $(k get deployment "$RELEASE-stepwise-worker" -o jsonpath='{.status.readyReplicas}') == 2 ]] ||
  fail "the upgrade did not bring a second ready worker"

say "helm uninstall: the CRD and the WorkflowRuns stay"
h uninstall "$RELEASE" --wait --timeout 180s
[[ -z $(k get deployments -o name) ]] || fail "deployments left after uninstall"
kubectl --context "$CONTEXT" get crd workflowruns.stepwise.dev >/dev/null || fail "the CRD is gone"
k get wfr crash >/dev/null || fail "the WorkflowRun is gone"
k patch wfr crash --type=merge -p '{"metadata":{"finalizers":null}}' >/dev/null

say "e2e-kind: passed"
