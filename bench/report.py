"""The targets, checked against the figures (reported, never asserted), and a text summary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.measure import ratio


def _get(doc: dict[str, Any], *path: str) -> Any:
    node: Any = doc
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def _target(value: float | None, goal: float, *, below: bool = False) -> dict[str, Any]:
    met = None if value is None else (value < goal if below else value >= goal)
    return {"value": value, "target": goal, "met": met}


def targets(suites: dict[str, Any]) -> dict[str, Any]:
    seq = ("throughput", "sequential")
    head = ("headline", "sequential")
    ours_steps = _get(suites, *seq, "systems", "stepwise", "median_db_steps_per_s")
    tps = _get(suites, "ceiling", "tps")
    share = ratio(ours_steps, tps)
    return {
        "stepwise/openworkflow workflows/s >= 2": _target(
            _get(suites, *seq, "ratios", "stepwise/openworkflow", "db_workflows_per_s"), 2.0
        ),
        "stepwise/dbos workflows/s >= 10": _target(
            _get(suites, *seq, "ratios", "stepwise/dbos", "db_workflows_per_s"), 10.0
        ),
        "stepwise/openworkflow workflows/s at the headline size >= 10": _target(
            _get(suites, *head, "ratios", "stepwise/openworkflow", "db_workflows_per_s"), 10.0
        ),
        "stepwise/dbos workflows/s at the headline size >= 50": _target(
            _get(suites, *head, "ratios", "stepwise/dbos", "db_workflows_per_s"), 50.0
        ),
        "stepwise steps/s as a share of the pgbench ceiling >= 0.25": _target(share, 0.25),
        "p50 start->result ms < 50 (idle worker)": _target(
            _get(suites, "latency", "systems", "stepwise", "client", "p50_ms"), 50.0, below=True
        ),
    }


# The throughput tables, in the order they are shown: (suite, shape).
_THROUGHPUT_TABLES = (
    ("headline", "sequential"),
    ("throughput", "sequential"),
    ("throughput", "parallel"),
)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.1f}" if value >= 10 else f"{value:.2f}"
    return str(value)


def render(doc: dict[str, Any]) -> str:
    lines = ["", "== results (medians) =="]
    suites = doc["suites"]
    for suite, shape in _THROUGHPUT_TABLES:
        block = _get(suites, suite, shape)
        if not block or "systems" not in block:
            continue
        lines.append(f"{suite}, {shape} (4 steps), {suites[suite]['runs']} runs:")
        lines.append(
            f"  {'system':13} {'db wf/s':>9} {'db steps/s':>11} {'e2e wf/s':>9}"
            f" {'commits/wf':>10} {'cpu ms/wf':>9} {'pg cpu ms/wf':>12}"
        )
        for name, s in block["systems"].items():
            lines.append(
                f"  {name:13} {_fmt(s['median_db_workflows_per_s']):>9}"
                f" {_fmt(s['median_db_steps_per_s']):>11}"
                f" {_fmt(s['median_e2e_workflows_per_s']):>9}"
                f" {_fmt(s['median_commits_per_workflow']):>10}"
                f" {_fmt(s['median_runner_cpu_ms_per_workflow']):>9}"
                f" {_fmt(s['median_server_cpu_ms_per_workflow']):>12}"
            )
        for name, r in block["ratios"].items():
            lines.append(
                f"  {name}: {_fmt(r['db_workflows_per_s'])}x (database side),"
                f" {_fmt(r['e2e_workflows_per_s'])}x (end to end)"
            )
    if _get(suites, "ceiling", "tps"):
        c = suites["ceiling"]
        lines.append(
            f"ceiling: pgbench 1 INSERT/transaction, -c {c['clients']}: {c['tps']:,.0f} tps"
        )
    lat = _get(suites, "latency", "systems")
    if lat:
        for name, s in lat.items():
            lines.append(
                f"latency {name:13} client p50 {s['client']['p50_ms']} ms p99 "
                f"{s['client']['p99_ms']} ms; database p50 {s['database']['p50_ms']} ms"
            )
    k8s = suites.get("k8s")
    if k8s:
        lines.append(f"k8s: {k8s.get('error') or k8s.get('summary')}")
    for name, t in doc.get("targets", {}).items():
        mark = {True: "met", False: "MISSED", None: "not measured"}[t["met"]]
        lines.append(f"target {name}: {_fmt(t['value'])} -> {mark}")
    return "\n".join(lines)


def _loads(node: Any) -> list[float]:
    """Every 1-minute load average recorded anywhere below ``node``."""
    if isinstance(node, dict):
        found = [float(node["load_average"][0])] if "load_average" in node else []
        for value in node.values():
            found += _loads(value)
        return found
    if isinstance(node, list):
        return [x for item in node for x in _loads(item)]
    return []


# The suites whose figures the machine line's load range describes (the Argo table has its own).
_MACHINE_LOAD_SUITES = ("throughput", "headline", "latency", "ceiling", "k8s")


def markdown(doc: dict[str, Any]) -> str:
    """The README's figures: one table per shape, then latency, ceiling, Kubernetes, machine."""
    suites, m = doc["suites"], doc["machine"]
    out: list[str] = []
    for suite, shape in _THROUGHPUT_TABLES:
        block = _get(suites, suite, shape)
        if not block or "systems" not in block:
            continue
        t = suites[suite]
        out += [
            f"**{t['runs']:,} runs x 4 {shape} steps, worker concurrency {t['concurrency']}** "
            f"(medians of {t['rounds']} interleaved rounds; database side = first claim to "
            "last finish):",
            "",
            "| system | workflows/s | steps/s | end-to-end wf/s | commits/workflow "
            "| stepwise/this |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for name, s in block["systems"].items():
            r = block["ratios"].get(f"stepwise/{name}")
            faster = (
                f"{_fmt(r['db_workflows_per_s'])}x (rounds: "
                + ", ".join(f"{x:.1f}x" for x in r.get("db_workflows_per_s_each_round", []))
                + ")"
                if r
                else ""
            )
            label = t.get("labels", {}).get(name, name)
            out.append(
                f"| {label} | {_fmt(s['median_db_workflows_per_s'])}"
                f" | {_fmt(s['median_db_steps_per_s'])}"
                f" | {_fmt(s['median_e2e_workflows_per_s'])}"
                f" | {_fmt(s['median_commits_per_workflow'])} | {faster} |"
            )
        out.append("")
    lat = _get(suites, "latency", "systems")
    if lat:
        out.append("**Start -> result, 3 sequential steps, idle worker** (client side):")
        out.append("")
        out += ["| system | p50 ms | p99 ms |", "|---|---:|---:|"]
        labels = _get(suites, "throughput", "labels") or {}
        for name, s in lat.items():
            label = labels.get(name, name)
            out.append(f"| {label} | {s['client']['p50_ms']} | {s['client']['p99_ms']} |")
        out.append("")
    share = _get(doc, "targets", "stepwise steps/s as a share of the pgbench ceiling >= 0.25")
    if _get(suites, "ceiling", "tps"):
        c = suites["ceiling"]
        ratio_text = f" stepwise's steps/s are {share['value']:.0%} of it." if share else ""
        out.append(
            f"Commit ceiling of this Postgres (pgbench, one INSERT per transaction, "
            f"{c['clients']} clients): {c['tps']:,.0f} transactions/s;{ratio_text}"
        )
        out.append("")
    k8s = suites.get("k8s")
    if k8s and "summary" in k8s:
        out.append(
            f"Kubernetes: {k8s['workflow_runs']:,} WorkflowRuns created at once -> all Succeeded "
            f"in {k8s['all_succeeded_seconds']} s; "
            f"{_fmt(k8s['operator_api_requests_per_run'])} API requests per run by the operator; "
            f"operator peak RSS {k8s['operator_peak_rss_mib']}"
            " MiB."
        )
        out.append("")
    if "argo" in suites:
        out += [*_argo(suites["argo"]), ""]
    pg = m.get("postgres", {})
    loads = _loads({name: suites[name] for name in _MACHINE_LOAD_SUITES if name in suites})
    load_text = f"{min(loads):.1f}-{max(loads):.1f}" if loads else "?"
    out.append(
        f"Machine: {m['cores']} vCPU {m['cpu']}, {m['ram_gib']} GiB RAM, {m['os']}, "
        f"PostgreSQL {str(pg.get('version', '?')).split()[0]} (fsync and synchronous_commit on), "
        f"Python {m['python']}, Node {m['node']}; a machine shared with other work: 1-minute "
        f"load average {load_text} at the starts of the measured runs (the benchmark's own "
        f"processes included); {doc['generated_at'][:16].replace('T', ' ')} UTC."
    )
    return "\n".join(out)


NOT_MEASURED = "not measured"

# The Argo table's rows: label, the figure's path in one side's result, its unit.
_ARGO_ROWS = (
    ("one run, create -> Succeeded, p50 of {singles}", ("single_run_p50_seconds",), "s"),
    ("{runs} runs at once -> all Succeeded", ("batch", "all_succeeded_seconds"), "s"),
    ("API requests per run (all clients)", ("batch", "api_requests_per_run"), ""),
    ("Pods created per run", ("batch", "pods_created_per_run"), ""),
    ("controller / operator peak RSS", ("controller_peak_rss_mib",), "MiB"),
)

_ARGO_SIDES = {"argo": "Argo", "stepwise": "stepwise"}


def _argo(result: dict[str, Any]) -> list[str]:
    """The Argo Workflows table of the ``argo`` suite: a figure it lacks (a failed or partial
    run) reads "not measured", and the line below says at what load each side was measured,
    since the two sides may come from different runs."""
    sides = {label: result.get(name) or {} for name, label in _ARGO_SIDES.items()}
    singles = max(
        (side.get("single_runs_succeeded") or len(side.get("single_run_seconds", [])))
        for side in sides.values()
    )
    runs = max(_get(side, "batch", "runs") or 0 for side in sides.values())
    version = result.get("argo_version", "")
    out = [
        "**Argo Workflows side by side** (the seed's shape: three parallel no-op steps, then a "
        f"final one; Argo {version} built here from its Go module, on the same real node; "
        "`sudo flock /tmp/e2e.lock python -m bench --only argo`):",
        "",
        f"| seed shape | Argo Workflows {version} | stepwise |",
        "|---|---:|---:|",
    ]
    for label, path, unit in _ARGO_ROWS:
        cells = []
        for side in sides.values():
            value = _get(side, *path)
            cells.append(NOT_MEASURED if value is None else f"{_fmt(value)} {unit}".strip())
        out.append(
            f"| {label.format(singles=singles or '?', runs=runs or '?')} | {' | '.join(cells)} |"
        )
    out += ["", _argo_loads(result, sides)]
    if result.get("error"):
        out += ["", f"Not complete: {str(result['error']).rstrip('.')}."]
    return out


def _argo_loads(result: dict[str, Any], sides: dict[str, dict[str, Any]]) -> str:
    """Each side's 1-minute load average when its measurements started (a side measured in a
    separate run carries its own), and during Argo's batch when recorded."""
    parts = []
    for name, side in sides.items():
        load = side.get("load_average") or result.get("load_average")
        parts.append(f"{name} {load[0]:.1f}" if load else f"{name} {NOT_MEASURED}")
    text = "1-minute load average when each side's figures were measured: " + ", ".join(parts)
    during = result.get("load_average_during_batch")
    if during is not None:
        text += f"; during Argo's batch: {during:.1f}"
    return f"{text} ({str(result.get('ran_at', '?'))[:10]})."


START, END = "<!-- bench:start -->", "<!-- bench:end -->"


def update_readme(path: Path, figures: str) -> None:
    """Replace what stands between the bench markers of ``path`` with ``figures``."""
    text = path.read_text(encoding="utf-8")
    head, sep, rest = text.partition(START)
    _, sep2, tail = rest.partition(END)
    if not sep or not sep2:
        raise RuntimeError(f"{path} has no {START} ... {END} block")
    path.write_text(f"{head}{START}\n{figures}\n{END}{tail}", encoding="utf-8")
