"""The test node's fixed layout (addresses, names, directories on the host) and the files
and manifests it is configured with: CNI, containerd, the kubelet, storage, RBAC.

Pure data, no side effects: ``harness.node`` writes and applies them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.controlplane import SERVICE_CIDR
from harness.tools import cache_dir

BRIDGE = "stepwise0"
NODE_IP = "10.244.0.1"
POD_CIDR = "10.244.0.0/24"
NODE_NAME = "stepwise-node"
CLUSTER_DOMAIN = "cluster.local"
RUN_DIR = Path("/run/stepwise-node")
# Kept between nodes: containerd's root (the imported images). Wiped by every cleanup: the
# kubelet's root dir and the pods' logs.
STATE_DIR = cache_dir() / "node"
KUBELET_DIR = STATE_DIR / "kubelet"
POD_LOGS_DIR = STATE_DIR / "pod-logs"
LOCK_FILE = Path("/run/stepwise-node.lock")
DEV_CLUSTER = "the dev cluster"
STORAGE_CLASS = "stepwise-local"
VOLUMES = 8
NETNS_DIR = Path("/var/run/netns")
# kube-proxy's and the kubelet's chains, and those of the CNI portmap plugin.
CHAIN_PREFIXES = ("KUBE-", "CNI-")


def cni_config() -> dict[str, Any]:
    """Bridge + host-local + portmap. Pods route only the pod subnet (on the bridge) and the
    Service range (via NODE_IP, where kube-proxy's DNAT applies): nothing else is reachable."""
    return {
        "cniVersion": "1.0.0",
        "name": "stepwise",
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "dataDir": str(RUN_DIR / "ipam"),
                    "ranges": [[{"subnet": POD_CIDR, "gateway": NODE_IP}]],
                    "routes": [{"dst": SERVICE_CIDR}],
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def kubelet_config(
    ca_file: Path, cert: tuple[Path, Path], healthz_port: int, containerd_socket: Path
) -> dict[str, Any]:
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": NODE_IP,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": healthz_port,
        "tlsCertFile": str(cert[0]),
        "tlsPrivateKeyFile": str(cert[1]),
        # Only the API server's client certificate gets in, and then only as RBAC allows.
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": False},
            "x509": {"clientCAFile": str(ca_file)},
        },
        "authorization": {"mode": "Webhook"},
        "containerRuntimeEndpoint": f"unix://{containerd_socket}",
        # This machine: cgroup v1 (hybrid mounts), no systemd.
        "cgroupDriver": "cgroupfs",
        "failCgroupV1": False,
        "failSwapOn": False,
        "clusterDNS": [NODE_IP],
        "clusterDomain": CLUSTER_DOMAIN,
        "resolvConf": "",  # pods do not inherit the host's resolvers
        # The images exist only here: never garbage-collect them.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%"},
        "serializeImagePulls": False,
        "nodeStatusReportFrequency": "10s",
        "podLogsDir": str(POD_LOGS_DIR),
    }


CONTAINERD_CONFIG = """\
version = 2
root = "{root}"
state = "{state}"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = "{socket}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause}"
  # root here lacks CAP_SYS_RESOURCE: without this runc fails every sandbox.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{cni_conf}"
"""

STORAGE_CLASS_MANIFEST = f"""\
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: {STORAGE_CLASS}
  annotations: {{storageclass.kubernetes.io/is-default-class: "true"}}
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: WaitForFirstConsumer
reclaimPolicy: Retain
"""


def volume(name: str, path: Path) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": name},
        "spec": {
            "capacity": {"storage": "20Gi"},
            "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": STORAGE_CLASS,
            "local": {"path": str(path)},
            "nodeAffinity": {
                "required": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {
                                    "key": "kubernetes.io/hostname",
                                    "operator": "In",
                                    "values": [NODE_NAME],
                                }
                            ]
                        }
                    ]
                }
            },
        },
    }


CLUSTER_ROLES = """\
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "stepwise:kube-apiserver-kubelet-client"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:kubelet-api-admin"}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: "$KUBELET_CLIENT"}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "stepwise:coredns"}
rules:
- apiGroups: [""]
  resources: [endpoints, services, pods, namespaces]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "stepwise:coredns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "stepwise:coredns"}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: "$COREDNS_USER"}]
"""
