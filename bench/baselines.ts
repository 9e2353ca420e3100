// The documents benchmark's yardsticks, measured on the same machine in the same run as Kuvert:
// clamd alone on the same bytes, and a bare client doing exactly Kuvert's homeserver work for
// the same documents (media upload, the notice, the file event).
import { documentTexts } from "../appservice/documents/texts.ts";
import { notice } from "../appservice/i18n.ts";
import { transactionId } from "../appservice/matrix/homeserver.ts";
import { documentStream, type PlannedDocument } from "./content.ts";
import { cpuMeter, type Env } from "./drop.ts";
import { httpRequest as rawRequest } from "./http.ts";
import { log, percentile, pool, sleep, sum, type RequestStats } from "./measure.ts";

// ---------------------------------------------------------------------------------------
// Baseline: clamd alone

export interface Baseline {
  documents: number;
  bytes: number;
  /** The median run. */
  seconds: number;
  runs: number[];
  concurrency: number;
  clean: number;
}

/**
 * clamd's throughput on the same bytes, through Kuvert's own ClamdScanner but without Kuvert:
 * `rounds` runs, the median counts (the runs show how steady clamd is). clamd's clean-file
 * cache is off (bench/stack.ts), so a repeat is a real scan.
 */
export async function clamdBaseline(env: Env, docs: PlannedDocument[], concurrency: number, rounds: number): Promise<Baseline> {
  const runs: number[] = [];
  let clean = 0;
  for (let round = 0; round < rounds; round++) {
    clean = 0;
    const started = performance.now();
    await pool(docs, concurrency, async (doc) => {
      const verdict = await env.scanner.scan(documentStream(doc.name, doc.size), doc.size);
      if (verdict.clean) clean++;
    });
    runs.push((performance.now() - started) / 1000);
  }
  const seconds = [...runs].sort((x, y) => x - y)[Math.floor(runs.length / 2)]!;
  return { documents: docs.length, bytes: sum(docs.map((d) => d.size)), seconds, runs, concurrency, clean };
}

// ---------------------------------------------------------------------------------------
// Baseline: a bare client doing Kuvert's homeserver work

export interface RawRun {
  label: string;
  concurrency: number;
  documents: number;
  bytes: number;
  /** First upload started → last file event answered. */
  seconds: number;
  cpu: Record<string, number>;
  /** The bare client's requests: media uploads and room sends, how many and their seconds in all. */
  requests: RequestStats;
  /** Per document, upload start → file event answered: median and 95th percentile, seconds. */
  latency: { p50: number; p95: number };
}

/**
 * Exactly Kuvert's homeserver work for one document, as a bare client (Kuvert's bot, its
 * as_token): the media upload (POST /_matrix/media/v3/upload, with Content-Length, or where the
 * homeserver has async upload: create, then PUT), the short m.notice, the m.file event, one
 * after the other, into the organisation's room. The same bytes (made as a stream) and the same
 * texts Kuvert sends; transaction ids of their own.
 */
async function rawDocument(env: Env, doc: PlannedDocument, label: string, asyncUpload: boolean, requests: RequestStats): Promise<void> {
  const timed = async <T>(kind: string, call: () => Promise<T>): Promise<T> => {
    const started = performance.now();
    try {
      return await call();
    } finally {
      const entry = (requests[kind] ??= { count: 0, seconds: 0 });
      entry.count++;
      entry.seconds += (performance.now() - started) / 1000;
    }
  };
  const base = env.bench.access.url;
  const auth = `Bearer ${env.bench.stack.registration.as_token}`;
  const roomId = env.rooms.get(doc.organisation);
  if (!roomId) throw new Error(`no room for ${doc.organisation}`);
  const filename = `${doc.name}.pdf`;
  const uploadHeaders = { authorization: auth, "content-type": "application/pdf", "content-length": String(doc.size) };
  let mxc: string;
  if (asyncUpload) {
    const created = await timed("create", () => rawRequest(`${base}/_matrix/media/v1/create`, "POST", { authorization: auth }));
    mxc = String(created.json.content_uri);
    const [server, mediaId] = mxc.slice("mxc://".length).split("/");
    const put = await timed("upload", () => rawRequest(`${base}/_matrix/media/v3/upload/${encodeURIComponent(server!)}/${encodeURIComponent(mediaId!)}?filename=${encodeURIComponent(filename)}`, "PUT", uploadHeaders, () => documentStream(doc.name, doc.size)));
    if (put.status !== 200) throw new Error(`bare client upload: ${put.status} ${JSON.stringify(put.json)}`);
  } else {
    const posted = await timed("upload", () => rawRequest(`${base}/_matrix/media/v3/upload?filename=${encodeURIComponent(filename)}`, "POST", uploadHeaders, () => documentStream(doc.name, doc.size)));
    if (posted.status !== 200) throw new Error(`bare client upload: ${posted.status} ${JSON.stringify(posted.json)}`);
    mxc = String(posted.json.content_uri);
  }
  const text = notice(documentTexts(env.bench.stack.config.organisations.language).announcement({ filename, kind: "Benchmark", reference: doc.name, submitted_by: "token:bench-drop" }));
  const file = { msgtype: "m.file", body: filename, filename, url: mxc, info: { mimetype: "application/pdf", size: doc.size } };
  for (const [part, content] of [
    ["text", text],
    ["file", file],
  ] as const) {
    const res = await timed("send", () =>
      rawRequest(`${base}/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/${transactionId(`raw:${label}:${doc.index}:${part}`)}`, "PUT", { authorization: auth, "content-type": "application/json" }, () => Buffer.from(JSON.stringify(content))),
    );
    if (res.status !== 200) throw new Error(`bare client send: ${res.status} ${JSON.stringify(res.json)}`);
  }
}

/** Whether the homeserver has async upload (POST /_matrix/media/v1/create), as Kuvert learns it. */
export async function hasAsyncUpload(env: Env): Promise<boolean> {
  const res = await rawRequest(`${env.bench.access.url}/_matrix/media/v1/create`, "POST", { authorization: `Bearer ${env.bench.stack.registration.as_token}` });
  return res.status === 200;
}

/** The bare client over the whole set, `concurrency` documents at a time. */
export async function rawBaseline(env: Env, docs: PlannedDocument[], concurrency: number, label: string, asyncUpload: boolean): Promise<RawRun> {
  await sleep(1000);
  const cpu = cpuMeter(env);
  let done = 0;
  const progress = setInterval(() => log(`  bare client ${label}: ${done}/${docs.length} documents`), 15_000);
  const requests: RequestStats = {};
  const latencies: number[] = [];
  const started = performance.now();
  try {
    await pool(docs, concurrency, async (doc) => {
      const t = performance.now();
      await rawDocument(env, doc, label, asyncUpload, requests);
      latencies.push((performance.now() - t) / 1000);
      done++;
    });
  } finally {
    clearInterval(progress);
  }
  const seconds = (performance.now() - started) / 1000;
  return {
    label,
    concurrency,
    documents: docs.length,
    bytes: sum(docs.map((d) => d.size)),
    seconds,
    cpu: cpu.stop(),
    requests,
    latency: { p50: percentile(latencies, 50), p95: percentile(latencies, 95) },
  };
}
