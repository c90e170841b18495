"""The test and bench harness: real servers started on this machine and the processes around
them, one job per module.

- ``processes``: start, watch and stop server processes; free ports; poll a condition.
- ``workers``: the ``stepwise`` processes a test spawns, signals and SIGKILLs.
- ``tools``: the pinned Kubernetes binaries (``tools/versions.env``) and where they are built.
- ``pki``: the test CA, certificates it signs, kubeconfigs.
- ``kubeapi``: the one client the tests and the bench use for the Kubernetes API.
- ``controlplane``: etcd, kube-apiserver, controller-manager, scheduler; kubectl and helm.
- ``node``: a real node (containerd, kubelet, kube-proxy, CoreDNS) joined to a control plane;
  ``nodeconfig`` its fixed layout and configuration files.
- ``postgres``: a throwaway PostgreSQL server.

Why a package of its own: ``tests/`` (through the fixtures in ``tests/plugins``), ``bench/`` and
``scripts/`` all start the same servers, and none of them should import another's test code.
It is not part of the ``stepwise`` distribution, and nothing in ``stepwise`` imports it.
"""
