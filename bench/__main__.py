"""``python -m bench``: every suite in one command, one Postgres, results in ``bench/results.json``.

    python -m bench                                  # all suites, 3 rounds
    python -m bench --only throughput,latency --rounds 3
    python -m bench --only throughput --systems stepwise,openworkflow --runs 200 --rounds 1

Suites: throughput (sequential and parallel shapes), headline (the sequential shape at
``--headline-runs``, 10,000 by default, beside OpenWorkflow and DBOS's defaults), ceiling
(pgbench), latency, k8s, and scale
(how cost grows; not in the default set: ``--only scale`` or ``make bench-scale``), and argo
(Argo Workflows beside stepwise on the real node, as root, not in the default set either:
``flock /tmp/e2e.lock python -m bench --only argo``). Results
of suites not run this time are kept from the previous ``results.json``, so one suite can be
re-run alone; every suite records when it ran and the load average at each measured run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import argo, ceiling, k8s, latency, machine, peers, report, scale, throughput
from bench.pgserver import BenchServer

RESULTS = Path(__file__).resolve().parent / "results.json"
README = Path(__file__).resolve().parent.parent / "README.md"
SUITES = ("throughput", "headline", "ceiling", "latency", "k8s")
HEADLINE_SYSTEMS = ("stepwise", "openworkflow", "dbos")
EVERY_SUITE = (*SUITES, "scale", "argo")
IMAGES = README.parent / "docs" / "images"


def _csv(choices: tuple[str, ...]) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        items = [x.strip() for x in text.split(",") if x.strip()]
        unknown = sorted(set(items) - set(choices))
        if unknown:
            raise argparse.ArgumentTypeError(f"unknown: {', '.join(unknown)} (choose {choices})")
        return items

    return parse


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    p.add_argument("--only", type=_csv(EVERY_SUITE), default=list(SUITES), help="suites to run")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds per shape")
    p.add_argument("--runs", type=int, default=1000, help="workflow runs per throughput run")
    p.add_argument(
        "--headline-runs", type=int, default=10_000, help="workflow runs per headline run"
    )
    p.add_argument("--concurrency", type=int, default=100, help="worker concurrency")
    p.add_argument(
        "--shapes",
        type=_csv(throughput.SHAPES),
        default=list(throughput.SHAPES),
        help="throughput shapes (sequential, parallel)",
    )
    p.add_argument(
        "--systems",
        type=_csv(tuple(throughput.SYSTEMS)),
        default=list(throughput.SYSTEMS),
        help=f"throughput systems ({', '.join(throughput.SYSTEMS)})",
    )
    p.add_argument("--latency-runs", type=int, default=200, help="runs timed one at a time")
    p.add_argument("--ceiling-seconds", type=int, default=10, help="pgbench -T")
    p.add_argument("--k8s-runs", type=int, default=500, help="WorkflowRuns created at once")
    p.add_argument(
        "--scale-tiny",
        action="store_true",
        help="the scale suite at its smoke-test size (50 runs, 50 steps, no Kubernetes)",
    )
    p.add_argument("--images", type=Path, default=IMAGES, help="where the scale suite's PNGs go")
    p.add_argument(
        "--cache-dir", type=Path, default=peers.DEFAULT_CACHE, help="where the peers install"
    )
    p.add_argument("--output", type=Path, default=RESULTS, help="the results file")
    p.add_argument(
        "--report-only",
        action="store_true",
        help="run nothing: print the figures of --output (and update README.md with --readme)",
    )
    p.add_argument(
        "--readme",
        action="store_true",
        help="also write the figures into README.md between the bench markers",
    )
    return p


def log(line: str) -> None:
    print(line, flush=True)


async def main(args: argparse.Namespace) -> int:
    # SIGTERM (a timeout, a CI stop) unwinds like Ctrl-C, so the server is stopped and removed.
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    if args.report_only:
        return _report(json.loads(args.output.read_text()), args)
    previous: dict[str, Any] = {}
    if args.output.exists():
        previous = json.loads(args.output.read_text()).get("suites", {})
    suites: dict[str, Any] = {k: v for k, v in previous.items() if k not in args.only}
    started = datetime.now(UTC).isoformat(timespec="seconds")
    info = machine.describe()
    log(f"==> machine: {info['cores']} cores, load {info['load_average_at_start']}")
    failures: list[str] = []
    need_peers = bool({"throughput", "headline", "latency"} & set(args.only))
    installed = peers.ensure(args.cache_dir) if need_peers else None
    async with BenchServer() as pg:
        info["postgres"] = await pg.describe()
        log(f"==> PostgreSQL {info['postgres']['version']} on 127.0.0.1:{pg.port}")
        jobs: dict[str, Callable[[], Awaitable[dict[str, Any]]]] = {}
        if installed is not None:
            setup = throughput.Setup(installed, args.runs, args.concurrency)
            jobs["throughput"] = lambda: throughput.run(
                pg, setup, shapes=args.shapes, systems=args.systems, rounds=args.rounds, log=log
            )
            headline = throughput.Setup(installed, args.headline_runs, args.concurrency)
            jobs["headline"] = lambda: throughput.run(
                pg,
                headline,
                shapes=["sequential"],
                systems=[s for s in args.systems if s in HEADLINE_SYSTEMS],
                rounds=args.rounds,
                log=log,
            )
            jobs["latency"] = lambda: latency.run(pg, installed, args.latency_runs, log=log)
        jobs["ceiling"] = lambda: ceiling.run(pg, args.ceiling_seconds, log=log)
        jobs["k8s"] = lambda: k8s.run(pg, args.k8s_runs, log=log)
        sizes = scale.TINY if args.scale_tiny else scale.Sizes()
        jobs["scale"] = lambda: scale.run(pg, sizes, log=log, images=args.images)
        jobs["argo"] = lambda: asyncio.to_thread(argo.run, log=log)
        for name in args.only:
            log(f"==> {name}")
            t0 = time.monotonic()
            try:
                result = await jobs[name]()
            except Exception as exc:  # a failed suite is reported, the others still run
                log(f"!! {name} failed: {exc}")
                failures.append(name)
                result = {"error": str(exc)}
            result["ran_at"] = datetime.now(UTC).isoformat(timespec="seconds")
            result["suite_seconds"] = round(time.monotonic() - t0, 1)
            suites[name] = result
    doc = {
        "generated_at": started,
        "command": " ".join(["python -m bench", *sys.argv[1:]]),
        "machine": info,
        "suites": suites,
    }
    doc["targets"] = report.targets(suites)
    args.output.write_text(json.dumps(doc, indent=2) + "\n")
    log(f"==> wrote {args.output}")
    _report(doc, args)
    if failures:
        log(f"!! failed suites: {', '.join(failures)}")
    return 1 if failures else 0


def _report(doc: dict[str, Any], args: argparse.Namespace) -> int:
    log(report.render(doc))
    if args.readme:
        report.update_readme(README, report.markdown(doc))
        log(f"==> updated the figures in {README}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(build_parser().parse_args())))
