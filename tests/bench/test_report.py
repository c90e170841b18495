"""The README's figures rendered from a results.json: with a complete Argo suite, a partial one
(figures missing read "not measured"), and none (no Argo table). Nothing is measured here."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from bench import report

MACHINE = {
    "cores": 2,
    "cpu": "AMD EPYC",
    "ram_gib": 23.5,
    "os": "Debian GNU/Linux 12 (bookworm)",
    "python": "3.11.7",
    "node": "v20.20.2",
    "postgres": {"version": "15.18 (Debian 15.18-0+deb12u1)"},
}


def side(p50: float, batch: dict[str, Any], rss: float) -> dict[str, Any]:
    return {
        "single_run_p50_seconds": p50,
        "single_run_seconds": [p50] * 10,
        "batch": batch,
        "controller_peak_rss_mib": rss,
    }


ARGO: dict[str, Any] = {
    "argo_version": "v3.7.3",
    "argo": side(
        20.11,
        {
            "runs": 100,
            "all_succeeded_seconds": 95.2,
            "api_requests_per_run": 61.3,
            "pods_created_per_run": 4.0,
        },
        88.4,
    ),
    "stepwise": side(
        0.53,
        {
            "runs": 100,
            "all_succeeded_seconds": 3.56,
            "api_requests_per_run": 5.1,
            "pods_created_per_run": 0.0,
        },
        145.7,
    ),
    "load_average": [9.45, 14.03, 16.59],
    "load_average_during_batch": 30.2,
    "ran_at": "2026-11-29T23:39:59+00:00",
}


def doc(suites: dict[str, Any]) -> dict[str, Any]:
    latency = {"stepwise": {"client": {"p50_ms": 2.99, "p99_ms": 4.72}}}
    suites = {"latency": {"systems": latency, "load_average": [0.3, 0.2, 0.1]}, **suites}
    return {"generated_at": "2026-11-25T10:02:06+00:00", "machine": MACHINE, "suites": suites}


def argo_rows(markdown: str) -> dict[str, list[str]]:
    """The Argo table's rows: label -> [Argo's cell, stepwise's cell]."""
    start = markdown.index("| seed shape |")
    rows = markdown[start:].split("\n\n", 1)[0].splitlines()[2:]
    cells = [[c.strip() for c in row.strip("|").split("|")] for row in rows]
    return {label: rest for label, *rest in cells}


def test_a_complete_argo_suite_renders_every_figure_and_each_sides_load() -> None:
    markdown = report.markdown(doc({"argo": ARGO}))
    assert argo_rows(markdown) == {
        "one run, create -> Succeeded, p50 of 10": ["20.1 s", "0.53 s"],
        "100 runs at once -> all Succeeded": ["95.2 s", "3.56 s"],
        "API requests per run (all clients)": ["61.3", "5.10"],
        "Pods created per run": ["4.00", "0.00"],
        "controller / operator peak RSS": ["88.4 MiB", "145.7 MiB"],
    }
    assert "Argo Workflows v3.7.3" in markdown
    assert (
        "1-minute load average when each side's figures were measured: Argo 9.4, stepwise 9.4; "
        "during Argo's batch: 30.2 (2026-11-29)."
    ) in markdown
    assert "Not complete" not in markdown
    # The Argo suite's loads are on its own line, not in the machine line's range.
    assert "load average 0.3-0.3 at the starts" in markdown


def test_a_partial_argo_suite_says_not_measured_where_a_figure_is_missing() -> None:
    partial = copy.deepcopy(ARGO)
    partial["argo"] = {"single_run_p50_seconds": 20.11, "single_runs_succeeded": 10}
    partial["stepwise"]["load_average"] = [2.68, 9.86, 15.0]  # measured in a separate run
    partial["error"] = "Argo's 100-run batch: 98 Running, 1 Failed, 1 Error at load 82"
    markdown = report.markdown(doc({"argo": partial}))
    rows = argo_rows(markdown)
    assert rows["one run, create -> Succeeded, p50 of 10"] == ["20.1 s", "0.53 s"]
    for label in (
        "100 runs at once -> all Succeeded",
        "API requests per run (all clients)",
        "Pods created per run",
        "controller / operator peak RSS",
    ):
        assert rows[label][0] == report.NOT_MEASURED, label
    assert "Argo 9.4, stepwise 2.7;" in markdown
    assert f"Not complete: {partial['error']}." in markdown


def test_without_an_argo_suite_there_is_no_argo_table() -> None:
    markdown = report.markdown(doc({}))
    assert "Argo" not in markdown
    assert "| stepwise | 2.99 | 4.72 |" in markdown


def test_the_readme_block_is_replaced_between_its_markers(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{report.START}\nold\n{report.END}\nlink\n", encoding="utf-8")
    report.update_readme(readme, report.markdown(doc({"argo": ARGO})))
    text = readme.read_text(encoding="utf-8")
    head, block = text.split(report.START)
    block, tail = block.split(report.END)
    assert (head, tail) == ("intro\n", "\nlink\n")
    assert "| seed shape |" in block
    assert "old" not in block


def throughput_suite(runs: int, ours: float, theirs: dict[str, float]) -> dict[str, Any]:
    """A throughput-shaped suite (sequential shape only) where stepwise does ``ours`` wf/s."""

    def system(wf_s: float) -> dict[str, float]:
        return {
            "median_db_workflows_per_s": wf_s,
            "median_db_steps_per_s": 4 * wf_s,
            "median_e2e_workflows_per_s": wf_s,
            "median_commits_per_workflow": 1.0,
        }

    return {
        "runs": runs,
        "concurrency": 100,
        "rounds": 3,
        "labels": {"openworkflow": "OpenWorkflow 0.10.1", "dbos": "DBOS 3.4.0, defaults"},
        "sequential": {
            "systems": {"stepwise": system(ours), **{n: system(v) for n, v in theirs.items()}},
            "ratios": {
                f"stepwise/{n}": {
                    "db_workflows_per_s": round(ours / v, 2),
                    "db_workflows_per_s_each_round": [ours / v] * 3,
                }
                for n, v in theirs.items()
            },
        },
        "load_average": [0.5, 0.4, 0.3],
    }


def test_the_headline_table_comes_first_and_its_targets_are_checked() -> None:
    suites = {
        "headline": throughput_suite(10_000, 5_000.0, {"openworkflow": 450.0, "dbos": 60.0}),
        "throughput": throughput_suite(1_000, 4_000.0, {"openworkflow": 500.0}),
    }
    markdown = report.markdown(doc(suites))
    headline = markdown.index("**10,000 runs x 4 sequential steps")
    assert headline < markdown.index("**1,000 runs x 4 sequential steps")
    assert "| OpenWorkflow 0.10.1 | 450.0 |" in markdown
    goals = report.targets(suites)
    assert goals["stepwise/openworkflow workflows/s at the headline size >= 10"]["met"] is True
    assert goals["stepwise/dbos workflows/s at the headline size >= 50"]["met"] is True
    assert goals["stepwise/openworkflow workflows/s >= 2"]["value"] == 8.0
    without = report.targets({"throughput": suites["throughput"]})
    assert without["stepwise/dbos workflows/s at the headline size >= 50"]["met"] is None
