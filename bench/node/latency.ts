// Start -> result latency of the Node peer with an idle worker: one run at a time of a
// workflow with 3 sequential no-op steps, the worker and the client in this process.
//
// Two ways of waiting for the result, both reported:
//   * "poll5ms": the client reads the run every 5 ms (getWorkflowRun, the call result() makes),
//     the engine's own latency without the client's fixed 1 s poll;
//   * "result": handle.result() as shipped (polls once per second), on fewer runs.
// The driver also reads created_at -> finished_at per run from the engine's tables.
//
// Env: DATABASE_URL, RUNS (200), DEFAULT_RUNS (20), WARMUP (10), CONCURRENCY (10).
// Prints one JSON line.
import { randomUUID } from "node:crypto";
import { OpenWorkflow } from "openworkflow";
import { BackendPostgres } from "openworkflow/postgres";

const RUNS = Number(process.env.RUNS ?? 200);
const DEFAULT_RUNS = Number(process.env.DEFAULT_RUNS ?? 20);
const WARMUP = Number(process.env.WARMUP ?? 10);
const CONCURRENCY = Number(process.env.CONCURRENCY ?? 10);
const URL = process.env.DATABASE_URL ?? "";

async function main() {
  const backend = await BackendPostgres.connect(URL, { namespaceId: randomUUID() });
  const client = new OpenWorkflow({ backend });
  const noop = () => {
    return;
  };
  const workflow = client.defineWorkflow({ name: "latency-workflow" }, async ({ step }) => {
    await step.run({ name: "step-1" }, noop);
    await step.run({ name: "step-2" }, noop);
    await step.run({ name: "step-3" }, noop);
    return { completed: true };
  });
  const worker = client.newWorker({ concurrency: CONCURRENCY });
  await worker.start();

  const poll5ms = async () => {
    const t0 = performance.now();
    const handle = await workflow.run();
    for (;;) {
      const run = await backend.getWorkflowRun({ workflowRunId: handle.workflowRun.id });
      if (run?.status === "completed") break;
      if (run?.status === "failed" || run?.status === "canceled") throw new Error(run.status);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    return performance.now() - t0;
  };
  const viaResult = async () => {
    const t0 = performance.now();
    const handle = await workflow.run();
    await handle.result();
    return performance.now() - t0;
  };

  for (let i = 0; i < WARMUP; i++) await poll5ms();
  const polled: number[] = [];
  for (let i = 0; i < RUNS; i++) polled.push(await poll5ms());
  const shipped: number[] = [];
  for (let i = 0; i < DEFAULT_RUNS; i++) shipped.push(await viaResult());
  await worker.stop();
  console.log(JSON.stringify({ warmup: WARMUP, poll5ms_ms: polled, result_ms: shipped }));
  await backend.stop();
}

await main();
