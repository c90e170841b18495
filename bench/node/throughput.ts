// Throughput of the Node peer, in the shape of its own published benchmark: N runs of a
// workflow with 4 no-op steps, all enqueued first, then one worker with concurrency C.
//
// SHAPE=sequential awaits the steps one after the other (the published shape);
// SHAPE=parallel runs them with Promise.all. Completion is seen by a COUNT query every 10 ms
// (the handles' result() polls once per second, which would round the time up). The database
// side (first claim to last finish) is read by the driver from the engine's own tables.
//
// Env: DATABASE_URL, RUNS (1000), CONCURRENCY (100), SHAPE (sequential).
// Prints one JSON line.
import { randomUUID } from "node:crypto";
import { OpenWorkflow } from "openworkflow";
import { BackendPostgres } from "openworkflow/postgres";

const RUNS = Number(process.env.RUNS ?? 1000);
const CONCURRENCY = Number(process.env.CONCURRENCY ?? 100);
const SHAPE = process.env.SHAPE ?? "sequential";
const URL = process.env.DATABASE_URL ?? "";

async function main() {
  const backend = await BackendPostgres.connect(URL, { namespaceId: randomUUID() });
  const client = new OpenWorkflow({ backend });
  const noop = () => {
    return;
  };
  const workflow = client.defineWorkflow({ name: "benchmark-workflow" }, async ({ step }) => {
    if (SHAPE === "parallel") {
      await Promise.all([
        step.run({ name: "step-1" }, noop),
        step.run({ name: "step-2" }, noop),
        step.run({ name: "step-3" }, noop),
        step.run({ name: "step-4" }, noop),
      ]);
    } else {
      await step.run({ name: "step-1" }, noop);
      await step.run({ name: "step-2" }, noop);
      await step.run({ name: "step-3" }, noop);
      await step.run({ name: "step-4" }, noop);
    }
    return { completed: true };
  });
  const worker = client.newWorker({ concurrency: CONCURRENCY });
  const pg = (backend as any).pg;
  const completed = async () =>
    Number(
      (
        await pg.unsafe(
          `SELECT COUNT(*)::int AS n FROM "openworkflow"."workflow_runs" WHERE "status" = 'completed'`,
        )
      )[0].n,
    );
  const lsn = async () => (await pg.unsafe("SELECT pg_current_wal_lsn()::text AS l"))[0].l as string;

  const enqueueStart = Date.now();
  await Promise.all(Array.from({ length: RUNS }, () => workflow.run()));
  const enqueueMs = Date.now() - enqueueStart;

  const walStart = await lsn();
  const processStart = Date.now();
  await worker.start();
  while ((await completed()) < RUNS) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  const processMs = Date.now() - processStart;
  const walEnd = await lsn();
  await worker.stop();
  console.log(
    JSON.stringify({
      enqueue_ms: enqueueMs,
      process_ms: processMs,
      process_start_epoch: processStart / 1000,
      wal_start: walStart,
      wal_end: walEnd,
      pool_size: 10,
    }),
  );
  await backend.stop();
}

await main();
