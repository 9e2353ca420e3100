// What the documents benchmark does to Kuvert and waits for, shared by its scenarios
// (bench/documents.ts, bench/processes.ts): organisations and their rooms, documents dropped
// through the public API, and the wait until each is delivered or rejected.
import type { Database } from "../appservice/db/database.ts";
import type { ClamdScanner } from "../appservice/scanning/scanner.ts";
import { documentStream, type PlannedDocument } from "./content.ts";
import { httpRequest } from "./http.ts";
import { CpuMeter, cpuSecondsOf, log, pool, sleep } from "./measure.ts";
import { postgresCpuSeconds, type BenchStack } from "./stack.ts";

/** With no document finished for this long, the run stops and says where the work is. */
const noProgressLimitMs = 5 * 60_000;

export interface Env {
  bench: BenchStack;
  db: Database;
  dropToken: string;
  kuvertPid: number;
  clampid: number | undefined;
  scanner: ClamdScanner;
  scanConcurrency: number;
  /** Organisation id → its room. */
  rooms: Map<string, string>;
}

/**
 * CPU seconds of every process of the run: Kuvert's (`kuvertPids`: the process being measured,
 * or each of several, as kuvert-1, kuvert-2 …), the homeserver's (when it is a process of its
 * own), clamd's and PostgreSQL's.
 */
export function cpuMeter(env: Env, kuvertPids: number[] = [env.kuvertPid]): CpuMeter {
  const cluster = env.bench.cluster;
  const synapsePid = env.bench.synapsePid;
  const kuverts = kuvertPids.length === 1 ? { kuvert: () => cpuSecondsOf(kuvertPids[0]!) } : Object.fromEntries(kuvertPids.map((pid, i) => [`kuvert-${i + 1}`, () => cpuSecondsOf(pid)]));
  return new CpuMeter({
    ...kuverts,
    ...(synapsePid ? { synapse: () => cpuSecondsOf(synapsePid) } : {}),
    clamd: () => (env.clampid ? cpuSecondsOf(env.clampid) : 0),
    ...(cluster ? { postgres: () => postgresCpuSeconds(cluster) } : {}),
  });
}

// ---------------------------------------------------------------------------------------
// Setup: organisations and their rooms

/** The ids of `count` organisations: bench-org-001 … (or another prefix of ten characters, e.g. bench-enc-). */
export function organisationIds(count: number, prefix = "bench-org-"): string[] {
  return Array.from({ length: count }, (_, i) => `${prefix}${String(i + 1).padStart(3, "0")}`);
}

/**
 * Creates the organisations through the admin API, one clerk each (an e-mail address; with
 * `matrixIds`, also that clerk's Matrix ID, whom Kuvert invites), and waits until every room is
 * ready.
 */
export async function createOrganisations(env: Env, count: number, opts: { prefix?: string; matrixIds?: Map<string, string> } = {}): Promise<{ ids: string[]; seconds: number }> {
  const { stack } = env.bench;
  const ids = organisationIds(count, opts.prefix);
  const started = performance.now();
  let created = 0;
  const progress = setInterval(() => log(`  ${created}/${ids.length} organisations created`), 15_000);
  await pool(ids, 4, async (id) => {
    const matrixId = opts.matrixIds?.get(id);
    const res = await stack.api("POST", "/api/v1/organisations", { id, name: `Bench organisation ${id.slice(10)}`, clerks: [{ ...(matrixId ? { matrixId } : {}), email: `clerk@${id}.example` }] });
    if (res.status !== 201 && res.status !== 200) throw new Error(`creating ${id}: ${res.status} ${JSON.stringify(res.body)}`);
    created++;
  }).finally(() => clearInterval(progress));
  const deadline = Date.now() + 15 * 60_000;
  let reported = Date.now();
  for (;;) {
    const res = await stack.api<{ organisations: { id: string; roomState: string; roomId: string | null }[] }>("GET", "/api/v1/organisations?limit=5000");
    const wanted = new Set(ids);
    for (const o of res.body.organisations) if (wanted.has(o.id) && o.roomState === "ready" && o.roomId) env.rooms.set(o.id, o.roomId);
    const ready = ids.filter((id) => env.rooms.has(id)).length;
    if (ready === ids.length) break;
    if (Date.now() > deadline) throw new Error(`only ${ready} of ${ids.length} organisation rooms became ready`);
    if (Date.now() - reported > 15_000) {
      log(`  ${ready}/${ids.length} rooms ready`);
      reported = Date.now();
    }
    await sleep(500);
  }
  return { ids, seconds: (performance.now() - started) / 1000 };
}

// ---------------------------------------------------------------------------------------
// Dropping documents and waiting for them

export interface Upload {
  doc: PlannedDocument;
  status: number;
  id?: string;
  error?: string;
  startedAt: number; // epoch ms
  answeredAt: number; // epoch ms
}

/** Drops one document through the public API of the Kuvert at `publicUrl` (by default the stack's first). */
export async function drop(env: Env, doc: PlannedDocument, publicUrl = env.bench.stack.publicUrl): Promise<Upload> {
  const startedAt = Date.now();
  try {
    const query = new URLSearchParams({ filename: `${doc.name}.pdf`, kind: "Benchmark", reference: doc.name });
    const headers = { authorization: `Bearer ${env.dropToken}`, "content-type": "application/pdf", "content-length": String(doc.size) };
    const res = await httpRequest(`${publicUrl}/api/v1/organisations/${doc.organisation}/documents?${query}`, "POST", headers, () => documentStream(doc.name, doc.size));
    const body = res.json as { id?: string; errcode?: string; error?: string };
    const upload: Upload = { doc, status: res.status, startedAt, answeredAt: Date.now() };
    if (res.status === 202 && body.id) upload.id = body.id;
    else upload.error = `${res.status} ${body.errcode ?? ""} ${body.error ?? ""}`.trim();
    return upload;
  } catch (err) {
    return { doc, status: 0, error: (err as Error).message, startedAt, answeredAt: Date.now() };
  }
}

export interface Finished {
  id: string;
  state: string;
  createdAt: number;
  scannedAt: number | null;
  finishedAt: number | null;
  scanMs: number | null;
  /** The verdict was reached while the document arrived (the scan ran alongside staging). */
  whileReceiving: boolean;
}

/**
 * Waits until every document is delivered or rejected, watching the database (one cheap query
 * per 250 ms, instead of a request per document to the process being measured). Answers
 * Kuvert's own timestamps for each document and the clamd time its scanner measured.
 */
export async function settle(env: Env, ids: string[]): Promise<Finished[]> {
  let lastDone = -1;
  let lastProgress = Date.now();
  for (;;) {
    const { rows } = await env.db.query<{ state: string; n: number }>("SELECT state, count(*)::int AS n FROM documents WHERE id = ANY($1) GROUP BY state", [ids]);
    const counts = Object.fromEntries(rows.map((r) => [r.state, Number(r.n)]));
    const done = (counts.delivered ?? 0) + (counts.rejected ?? 0);
    if (done === ids.length) break;
    if (done !== lastDone) {
      lastDone = done;
      lastProgress = Date.now();
    } else if (Date.now() - lastProgress > noProgressLimitMs) {
      const { rows: stuck } = await env.db.query<{ document_id: string; attempts: number; last_error: string | null }>("SELECT document_id, attempts, last_error FROM document_work WHERE document_id = ANY($1) AND state <> 'done' LIMIT 5", [ids]);
      throw new Error(`no progress for ${noProgressLimitMs / 1000} s; states ${JSON.stringify(counts)}; work: ${JSON.stringify(stuck)}`);
    }
    await sleep(250);
  }
  const { rows } = await env.db.query<{ id: string; state: string; created_ms: string; scanned_ms: string | null; finished_ms: string | null; scan_ms: string | null; while_receiving: string | null }>(
    `SELECT d.id, d.state,
            (extract(epoch FROM d.created_at) * 1000)::float8::text AS created_ms,
            (extract(epoch FROM d.scanned_at) * 1000)::float8::text AS scanned_ms,
            (extract(epoch FROM d.finished_at) * 1000)::float8::text AS finished_ms,
            (SELECT a.details->>'durationMs' FROM audit_log a WHERE a.action = 'document.scanned' AND a.object = d.id LIMIT 1) AS scan_ms,
            (SELECT a.details->>'whileReceiving' FROM audit_log a WHERE a.action = 'document.scanned' AND a.object = d.id LIMIT 1) AS while_receiving
       FROM documents d WHERE d.id = ANY($1)`,
    [ids],
  );
  const num = (v: string | null) => (v === null ? null : Number(v));
  return rows.map((r) => ({ id: r.id, state: r.state, createdAt: Number(r.created_ms), scannedAt: num(r.scanned_ms), finishedAt: num(r.finished_ms), scanMs: num(r.scan_ms), whileReceiving: r.while_receiving === "true" }));
}

/** Asks Kuvert's public API for each document's state, as a back office would (after timing). */
export async function statesByApi(env: Env, ids: string[]): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  await pool(ids, 8, async (id) => {
    const res = await env.bench.stack.api<{ state: string; eventId: string | null }>("GET", `/api/v1/documents/${id}`, undefined, { token: env.dropToken });
    const key = res.status === 200 ? (res.body.state === "delivered" && !res.body.eventId ? "delivered-without-event" : res.body.state) : `http-${res.status}`;
    counts[key] = (counts[key] ?? 0) + 1;
  });
  return counts;
}
