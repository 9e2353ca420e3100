// Several Kuvert processes on one PostgreSQL, one staging directory, one homeserver and one
// clamd: the same mixed documents dropped through the public APIs of N processes (round robin,
// as a balancer would), for each N asked, in one run (bench/documents.ts --processes=1,2,3).
// What it shows: documents per second for each N, and the CPU seconds of every process in the
// run — each Kuvert process, the homeserver, clamd, PostgreSQL — so that the report can say
// what limits the scaling: Kuvert, the homeserver, clamd, or the machine's cores.
import os from "node:os";
import type { PlannedDocument } from "./content.ts";
import { cpuMeter, drop, settle, type Env } from "./drop.ts";
import { log, pool, sleep, sum } from "./measure.ts";
import { waitFor } from "../test/support/harness.ts";
import { KuvertProcess } from "../test/support/processes.ts";

export interface ScaleStep {
  processes: number;
  documents: number;
  bytes: number;
  delivered: number;
  /** Drops refused or failed (none expected). */
  refused: number;
  /** First upload started → last document delivered. */
  seconds: number;
  /** CPU seconds of each process over the step: kuvert-1 … kuvert-N, synapse, clamd, postgres. */
  cpu: Record<string, number>;
  cpuWallSeconds: number;
  /** How many of the documents each Kuvert process finished (delivered or rejected). */
  finishedBy: number[];
}

/** Which process finished each document's work: the leaseholder of its last step (`<pid>-<id>`). */
async function finishedBy(env: Env, ids: string[], pids: number[]): Promise<number[]> {
  const { rows } = await env.db.query<{ leased_by: string | null; n: number }>("SELECT leased_by, count(*)::int AS n FROM document_work WHERE document_id = ANY($1) GROUP BY leased_by", [ids]);
  return pids.map((pid) => sum(rows.filter((r) => r.leased_by?.startsWith(`${pid}-`)).map((r) => Number(r.n))));
}

/**
 * Another Kuvert process on the stack's database, staging, homeserver and clamd (its log beside
 * the stack's), once it is ready: its start is through, clamd's canaries included (with a
 * 1.1 GiB scanning limit the over-limit canary alone keeps clamd busy for seconds), so none of
 * that is in the figures. The homeserver still pushes its transactions to the first process.
 */
async function startReady(env: Env, name: string): Promise<KuvertProcess> {
  const p = await KuvertProcess.of(env.bench.stack, name, env.bench.stack.workDir);
  await p.start();
  await waitFor(`${name} to be ready`, async () => (await fetch(`http://127.0.0.1:${p.publicPort}/readyz`).catch(() => undefined))?.ok === true, 180_000, 500);
  return p;
}

/**
 * For each count in `counts` (ascending), runs that many Kuvert processes (the stack's own and
 * others started here) and drops `docs` through them, `uploadsPerProcess` at a time per process.
 */
export async function scaleOut(env: Env, docs: PlannedDocument[], counts: number[], uploadsPerProcess: number): Promise<ScaleStep[]> {
  const extra: KuvertProcess[] = [];
  const steps: ScaleStep[] = [];
  try {
    for (const n of counts) {
      while (extra.length < n - 1) extra.push(await startReady(env, `kuvert-${extra.length + 2}`));
      while (extra.length > n - 1) await extra.pop()!.stop();
      const urls = [env.bench.stack.publicUrl, ...extra.map((e) => `http://127.0.0.1:${e.publicPort}`)];
      const pids = [env.kuvertPid, ...extra.map((e) => e.pid!)];
      log(`${n} Kuvert process${n === 1 ? "" : "es"} (pids ${pids.join(", ")}): ${docs.length} documents, ${uploadsPerProcess * n} uploads at a time, round robin`);
      await sleep(2000); // the new processes' start-up work (staff sync, canaries) stays out of the figures
      const cpu = cpuMeter(env, pids);
      const t0 = Date.now();
      const ids: string[] = [];
      let refused = 0;
      await pool(docs, uploadsPerProcess * n, async (doc, i) => {
        const upload = await drop(env, { ...doc, name: `${doc.name}-p${n}` }, urls[i % n]);
        if (upload.id) ids.push(upload.id);
        else if (refused++ < 5) log(`  upload of ${doc.name} refused: ${upload.error}`);
      });
      const finished = await settle(env, ids);
      const used = cpu.stop();
      const wall = (Date.now() - t0) / 1000;
      const last = Math.max(...finished.map((f) => f.finishedAt ?? 0));
      const step: ScaleStep = {
        processes: n,
        documents: docs.length,
        bytes: sum(docs.map((d) => d.size)),
        delivered: finished.filter((f) => f.state === "delivered").length,
        refused,
        seconds: (last - t0) / 1000,
        cpu: used,
        cpuWallSeconds: wall,
        finishedBy: await finishedBy(env, ids, pids),
      };
      log(`  ${step.delivered}/${step.documents} delivered in ${step.seconds.toFixed(1)} s: ${(step.documents / step.seconds).toFixed(1)} documents/s; finished per process ${step.finishedBy.join(" / ")}; ${cpuShares(step)}`);
      steps.push(step);
    }
  } finally {
    for (const e of extra) await e.stop().catch(() => undefined);
  }
  return steps;
}

const pct = (seconds: number, wall: number) => `${Math.round((100 * seconds) / wall)} %`;

/** Each process's CPU as a share of one core over the step, and the machine's cores in use. */
function cpuShares(step: ScaleStep): string {
  const parts = Object.entries(step.cpu).map(([name, s]) => `${name} ${pct(s, step.cpuWallSeconds)}`);
  const total = sum(Object.values(step.cpu));
  return `CPU ${parts.join(", ")}; the machine ${pct(total, step.cpuWallSeconds * os.availableParallelism())} busy of ${os.availableParallelism()} cores`;
}

/** The report's section: one row per process count, and what limits it. */
export function scaleReport(steps: ScaleStep[], bareClientPerSecond: number | undefined): string[] {
  const one = steps.find((s) => s.processes === 1) ?? steps[0]!;
  const rate = (s: ScaleStep) => s.documents / s.seconds;
  const cores = os.availableParallelism();
  const lines = [
    "",
    `## Several Kuvert processes (${one.documents} mixed documents per row, one homeserver, one clamd, ${cores} cores)`,
    "",
    "CPU as a share of one core over the row's wall time. The machine is busy with everything in the row plus the benchmark's driver (and the test homeserver, when it is the homeserver), the kernel's work on the stack's behalf and, under others, whatever else ran on the machine meanwhile: large figures there mean a disturbed row.",
    "",
    "| processes | documents/s | ÷ 1 process | finished per process | Kuvert CPU per process | homeserver | clamd | PostgreSQL | driver | kernel | others | machine busy, of its cores |",
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
  ];
  for (const s of steps) {
    const c = (name: string) => pct(s.cpu[name] ?? 0, s.cpuWallSeconds);
    const kuverts = Object.entries(s.cpu).filter(([name]) => name.startsWith("kuvert"));
    const total = sum(Object.values(s.cpu));
    lines.push(
      `| ${s.processes} | ${rate(s).toFixed(1)} | ${(rate(s) / rate(one)).toFixed(2)} | ${s.finishedBy.join(" / ")} | ${kuverts.map(([, v]) => pct(v, s.cpuWallSeconds)).join(" / ")} | ${c("synapse")} | ${c("clamd")} | ${c("postgres")} | ${c("bench")} | ${c("kernel")} | ${c("other")} | ${pct(total, s.cpuWallSeconds * cores)} |`,
    );
  }
  if (bareClientPerSecond) lines.push("", `The bare client on the same homeserver in the same run: ${bareClientPerSecond.toFixed(1)} documents/s (8 at a time), the homeserver's own ceiling for this work.`);
  return lines;
}
