"""The Kubernetes face of stepwise: the ``WorkflowRun`` resource and the kopf operator.

Membership: code that speaks to the Kubernetes API. It starts, follows and cancels runs only
through ``stepwise.client`` (never ``stepwise.worker``), and it is started only by
``stepwise operator``, which embeds kopf: never run a file of this package by path, or the
package's directory lands on ``sys.path`` and ``operator`` shadows Python's own module.

``models`` is the source of the CRD (``crd`` renders it), ``status`` turns a run and its steps
into the resource's status (pure), ``mirror`` follows Postgres and writes that status,
``handlers`` holds the kopf handlers and ``main`` runs them.
"""
