// Circulars, measured: one circular with a 2 MB attachment to 1,000 organisation rooms, fanned
// out by Kuvert (a child process of its own) to the test homeserver. Reported next to the same
// fan-out done one room at a time (circulars.concurrency 1) and to the homeserver's raw send
// rate — the same events sent straight to it by this process, with Kuvert's concurrency —
// measured in the same run. See bench/README.md.
//
//   node bench/circulars.ts            1,000 rooms
//   node bench/circulars.ts --quick    100 rooms (a smoke check)
// Options: --concurrency=N (circulars.concurrency of the measured run; default Kuvert's default).
import { Buffer } from "node:buffer";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import { execFileSync } from "node:child_process";
import { openDatabase, type Database } from "../appservice/db/database.ts";
import { configSchema } from "../appservice/config/schema.ts";
import { transactionId } from "../appservice/matrix/homeserver.ts";
import { documentChunks } from "./content.ts";
import { CpuMeter, cpuSecondsOf, sum } from "./measure.ts";
import { benchResultsDir, clamdPid, postgresPids, startBenchStack, startKuvertChild, type BenchStack } from "./stack.ts";

const args = process.argv.slice(2);
const quick = args.includes("--quick");
const concurrencyArg = args.find((a) => a.startsWith("--concurrency="));
for (const a of args) {
  if (a !== "--quick" && !/^--concurrency=\d+$/.test(a)) {
    console.error(`unknown argument ${a}; usage: node bench/circulars.ts [--quick] [--concurrency=N]`);
    process.exit(2);
  }
}
const ROOMS = quick ? 100 : 1000;
const ATTACHMENT_BYTES = 2 * 1000 * 1000;
const defaultConcurrency = configSchema.parse({}).circulars.concurrency;
const CONCURRENCY = concurrencyArg ? Number(concurrencyArg.split("=")[1]) : defaultConcurrency;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const f1 = (n: number) => n.toFixed(1);
function log(message: string): void {
  console.log(`[${new Date().toISOString().slice(11, 19)}] ${message}`);
}

async function pool<T>(items: T[], concurrency: number, work: (item: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        await work(items[i]!, i);
      }
    }),
  );
}

function attachment(): Buffer {
  return Buffer.concat([...documentChunks("circular-attachment", ATTACHMENT_BYTES)]);
}

const TEXT = "# Rundschreiben 2026/14\n\nSehr geehrte Damen und Herren,\n\nab dem **1. Januar 2027** gilt die neue Beitragsordnung (Anlage). Bitte beachten Sie insbesondere:\n\n- die geänderten Fristen\n- das neue Aktenzeichen-Format\n\nMit freundlichen Grüßen";

async function createOrganisations(bench: BenchStack, count: number): Promise<{ ids: string[]; rooms: Map<string, string>; seconds: number }> {
  const { stack } = bench;
  const ids = Array.from({ length: count }, (_, i) => `circ-org-${String(i + 1).padStart(4, "0")}`);
  const started = performance.now();
  await pool(ids, 8, async (id) => {
    const res = await stack.api("POST", "/api/v1/organisations", { id, name: `Organisation ${id.slice(9)}`, tags: ["bench"], clerks: [{ email: `clerk@${id}.example` }] });
    if (res.status !== 201 && res.status !== 200) throw new Error(`creating ${id}: ${res.status} ${JSON.stringify(res.body)}`);
  });
  const deadline = Date.now() + 30 * 60_000;
  const rooms = new Map<string, string>();
  for (;;) {
    const res = await stack.api<{ organisations: { id: string; roomState: string; roomId: string | null }[] }>("GET", "/api/v1/organisations?limit=5000&tag=bench");
    for (const o of res.body.organisations) if (o.roomState === "ready" && o.roomId) rooms.set(o.id, o.roomId);
    if (rooms.size === ids.length) break;
    if (Date.now() > deadline) throw new Error(`only ${rooms.size} of ${ids.length} organisation rooms became ready`);
    await sleep(1000);
  }
  return { ids, rooms, seconds: (performance.now() - started) / 1000 };
}

interface RawResult {
  sends: number;
  seconds: number;
  perSecond: number;
}

/** The homeserver alone: the same two events per room (text, file), PUT straight to it as Kuvert's bot, `concurrency` at a time. */
async function rawSends(bench: BenchStack, rooms: string[], concurrency: number, label: string): Promise<RawResult> {
  const { stack } = bench;
  const auth = `Bearer ${stack.registration.as_token}`;
  const upload = await fetch(`${bench.hs.url}/_matrix/media/v3/upload?filename=raw.pdf`, { method: "POST", headers: { authorization: auth, "content-type": "application/pdf" }, body: new Uint8Array(attachment()) });
  const mxc = ((await upload.json()) as { content_uri: string }).content_uri;
  const text = { msgtype: "m.text", body: TEXT, format: "org.matrix.custom.html", formatted_body: "<h1>Rundschreiben 2026/14</h1><p>…</p>" };
  const file = { msgtype: "m.file", body: "Anlage.pdf", filename: "Anlage.pdf", url: mxc, info: { mimetype: "application/pdf", size: ATTACHMENT_BYTES } };
  const started = performance.now();
  await pool(rooms, concurrency, async (roomId, i) => {
    for (const [part, content] of [["text", text], ["file", file]] as const) {
      const res = await fetch(`${bench.hs.url}/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/${transactionId(`raw:${label}:${i}:${part}`)}`, {
        method: "PUT",
        headers: { authorization: auth, "content-type": "application/json" },
        body: JSON.stringify(content),
      });
      if (!res.ok) throw new Error(`raw send: ${res.status} ${await res.text()}`);
      await res.arrayBuffer();
    }
  });
  const seconds = (performance.now() - started) / 1000;
  return { sends: rooms.length * 2, seconds, perSecond: (rooms.length * 2) / seconds };
}

interface KuvertResult {
  concurrency: number;
  rooms: number;
  /** POST → every room served. */
  wallSeconds: number;
  /** POST → fan-out open (attachment received, scanned, uploaded). */
  prepareSeconds: number;
  /** Fan-out open → every room served. */
  fanoutSeconds: number;
  sends: number;
  perSecond: number;
  uploads: number;
  delivered: number;
  failed: number;
  cpu: Record<string, number>;
}

async function kuvertCircular(bench: BenchStack, db: Database, rooms: number, concurrency: number, cpuGroups: Record<string, () => number>): Promise<KuvertResult> {
  const { stack, hs } = bench;
  const uploadsBefore = hs.faults.requests("*", /^\/_matrix\/media\/v3\/upload/);
  const sendsBefore = hs.faults.requests("PUT", /\/send\/m\.room\.message\//);
  const form = new FormData();
  form.append("text", TEXT);
  form.append("targets", JSON.stringify({ tag: "bench" }));
  form.append("attachment", new Blob([new Uint8Array(attachment())], { type: "application/pdf" }), "Beitragsordnung 2027.pdf");
  const cpu = new CpuMeter(cpuGroups);
  const started = Date.now();
  const res = await fetch(`${stack.publicUrl}/api/v1/circulars`, { method: "POST", headers: { authorization: `Bearer ${stack.adminToken}` }, body: form });
  const body = (await res.json()) as { id?: string; error?: string };
  if (res.status !== 201 || !body.id) throw new Error(`the circular was refused: ${res.status} ${JSON.stringify(body)}`);
  const id = body.id;
  let last = "";
  for (;;) {
    const { rows } = await db.query<{ state: string; finished_at: Date | null; pending: string }>(
      "SELECT c.state, c.finished_at, (SELECT count(*) FROM circular_deliveries d WHERE d.circular_id = c.id AND d.state = 'pending') AS pending FROM circulars c WHERE c.id = $1",
      [id],
    );
    const r = rows[0]!;
    const line = `${r.state}, ${r.pending} pending`;
    if (line !== last && Number(r.pending) % 100 === 0) log(`  ${line}`);
    last = line;
    if (r.state === "sent" || r.state === "stopped") break;
    if (Date.now() - started > 60 * 60_000) throw new Error("the circular did not finish within an hour");
    await sleep(250);
  }
  const cpuSeconds = cpu.stop();
  // The end is the last delivery recorded, not the circular's finished_at: that is set by the
  // watcher, which looks every circulars.progressIntervalSeconds.
  const times = await db.query<{ opened: Date; finished: Date }>(
    `SELECT (SELECT min(at) FROM audit_log WHERE object = $1 AND action = 'circular.sending') AS opened,
            (SELECT max(delivered_at) FROM circular_deliveries WHERE circular_id = $1) AS finished`,
    [id],
  );
  const t = times.rows[0]!;
  const counts = await db.query<{ state: string; n: string }>("SELECT state, count(*) AS n FROM circular_deliveries WHERE circular_id = $1 GROUP BY state", [id]);
  const n = (s: string) => Number(counts.rows.find((r) => r.state === s)?.n ?? 0);
  const roomSends = rooms * 2;
  const fanoutSeconds = (t.finished.getTime() - t.opened.getTime()) / 1000;
  const allSends = hs.faults.requests("PUT", /\/send\/m\.room\.message\//) - sendsBefore;
  log(`  ${allSends - roomSends} other sends (progress edits in the staff room)`);
  return {
    concurrency,
    rooms,
    wallSeconds: (t.finished.getTime() - started) / 1000,
    prepareSeconds: (t.opened.getTime() - started) / 1000,
    fanoutSeconds,
    sends: roomSends,
    perSecond: roomSends / fanoutSeconds,
    uploads: hs.faults.requests("*", /^\/_matrix\/media\/v3\/upload/) - uploadsBefore,
    delivered: n("delivered"),
    failed: n("failed"),
    cpu: cpuSeconds,
  };
}

async function restartKuvert(bench: BenchStack, concurrency: number): Promise<void> {
  const { stack } = bench;
  await stack.stopKuvert();
  stack.child = undefined;
  (stack.rawConfig.circulars as Record<string, unknown>).concurrency = concurrency;
  await startKuvertChild(stack, join(stack.workDir, `kuvert-c${concurrency}.log`));
}

function cpuLine(cpu: Record<string, number>): string {
  return Object.entries(cpu).map(([k, v]) => `${k} ${f1(v)}`).join(" · ");
}

async function main(): Promise<void> {
  const cpuModel = os.cpus()[0]?.model ?? "?";
  const clamVersion = (() => {
    try {
      return execFileSync("clamd", ["--version"], { encoding: "utf8" }).trim().split("/")[0];
    } catch {
      return "?";
    }
  })();
  log(`starting the stack; ${ROOMS} rooms, circulars.concurrency ${CONCURRENCY}`);
  const bench = await startBenchStack({
    name: `bench-circulars-${quick ? "quick" : "full"}`,
    clamdStreamMaxLength: "100M",
    homeserverMaxUploadBytes: 50 * 1024 * 1024,
    configure: (raw) => {
      (raw.publicApi as Record<string, unknown>).rateLimitPerMinute = 1_000_000;
      raw.circulars = { concurrency: CONCURRENCY };
      // A free port: another Kuvert (another benchmark) may hold the default 9464.
      raw.metrics = { listener: { bindAddress: "127.0.0.1", port: 0 } };
    },
  });
  let db: Database | undefined;
  try {
    const { stack } = bench;
    db = await openDatabase({ url: stack.config.database.url, embeddedDir: "", poolSize: 2 });
    log(`creating ${ROOMS} organisations and their rooms`);
    const orgs = await createOrganisations(bench, ROOMS);
    log(`  ${orgs.rooms.size} rooms ready in ${f1(orgs.seconds)} s`);
    const roomIds = [...orgs.rooms.values()];
    const kuvertPid = () => stack.child?.pid ?? 0;
    const clamd = clamdPid(bench.clamd);
    const groups = {
      kuvert: () => cpuSecondsOf(kuvertPid()),
      postgres: () => sum(postgresPids(bench.cluster).map((p) => cpuSecondsOf(p))),
      clamd: () => (clamd ? cpuSecondsOf(clamd) : 0),
    };

    log("warm-up: the raw send path once over 50 rooms");
    await rawSends(bench, roomIds.slice(0, 50), CONCURRENCY, "warm");

    log(`raw send rate, ${CONCURRENCY} at a time`);
    const rawBefore = await rawSends(bench, roomIds, CONCURRENCY, "before");
    log(`  ${rawBefore.sends} sends in ${f1(rawBefore.seconds)} s: ${f1(rawBefore.perSecond)}/s`);

    log(`Kuvert, circulars.concurrency ${CONCURRENCY}`);
    const parallel = await kuvertCircular(bench, db, ROOMS, CONCURRENCY, groups);
    log(`  ${parallel.delivered} delivered, ${parallel.failed} failed; wall ${f1(parallel.wallSeconds)} s, fan-out ${f1(parallel.fanoutSeconds)} s: ${f1(parallel.perSecond)} sends/s; uploads ${parallel.uploads}`);

    log("raw send rate again (drift check)");
    const rawAfter = await rawSends(bench, roomIds, CONCURRENCY, "after");
    log(`  ${rawAfter.sends} sends in ${f1(rawAfter.seconds)} s: ${f1(rawAfter.perSecond)}/s`);

    log("Kuvert, one room at a time (circulars.concurrency 1)");
    await restartKuvert(bench, 1);
    const serial = await kuvertCircular(bench, db, ROOMS, 1, groups);
    log(`  ${serial.delivered} delivered; wall ${f1(serial.wallSeconds)} s, fan-out ${f1(serial.fanoutSeconds)} s: ${f1(serial.perSecond)} sends/s`);

    log("raw send rate, one at a time");
    const rawSerial = await rawSends(bench, roomIds, 1, "serial");
    log(`  ${rawSerial.sends} sends in ${f1(rawSerial.seconds)} s: ${f1(rawSerial.perSecond)}/s`);

    const raw = (rawBefore.perSecond + rawAfter.perSecond) / 2;
    const vsSerial = serial.fanoutSeconds / parallel.fanoutSeconds;
    const vsSerialWall = serial.wallSeconds / parallel.wallSeconds;
    const vsRaw = parallel.perSecond / raw;
    const date = new Date().toISOString().slice(0, 10);
    const md = [
      `## Circulars: one 2 MB attachment to ${ROOMS.toLocaleString("en")} rooms (${date})`,
      "",
      `Machine: ${os.cpus().length} cores (${cpuModel}), Node ${process.version}, ${clamVersion}; Kuvert, PostgreSQL, clamd and this process (driver + test homeserver) share it.`,
      "",
      "| scenario | figure | measured | target |",
      "| --- | --- | --- | --- |",
      `| Kuvert, ${CONCURRENCY} rooms at a time | wall time (POST → every room served) | ${f1(parallel.wallSeconds)} s (receive, scan, upload ${f1(parallel.prepareSeconds)} s · fan-out ${f1(parallel.fanoutSeconds)} s) | — |`,
      `| | room sends (text + file per room) | ${parallel.sends} in ${f1(parallel.fanoutSeconds)} s: **${f1(parallel.perSecond)} sends/s**; ${parallel.delivered} delivered, ${parallel.failed} failed | — |`,
      `| | attachment uploads | ${parallel.uploads} | 1 |`,
      `| Kuvert, one room at a time | wall time | ${f1(serial.wallSeconds)} s (fan-out ${f1(serial.fanoutSeconds)} s: ${f1(serial.perSecond)} sends/s) | — |`,
      `| | ${CONCURRENCY} at a time ÷ one at a time | **${f1(vsSerial)}×** (fan-out) · ${f1(vsSerialWall)}× (wall) | ≥ 5× |`,
      `| homeserver alone, ${CONCURRENCY} at a time | raw send rate | ${f1(rawBefore.perSecond)}/s before, ${f1(rawAfter.perSecond)}/s after (mean ${f1(raw)}/s) | — |`,
      `| | Kuvert ÷ raw send rate | **${vsRaw.toFixed(2)}** | ≥ 0.7 |`,
      `| homeserver alone, one at a time | raw send rate | ${f1(rawSerial.perSecond)}/s; ${CONCURRENCY} at a time ÷ one at a time: ${f1(raw / rawSerial.perSecond)}× (the most any client gains here) | — |`,
      "",
      `CPU seconds during the ${CONCURRENCY}-at-a-time circular: ${cpuLine(parallel.cpu)}; one at a time: ${cpuLine(serial.cpu)}.`,
      "",
    ].join("\n");
    mkdirSync(benchResultsDir, { recursive: true });
    const file = join(benchResultsDir, `circulars-${date}${quick ? "-quick" : ""}.md`);
    writeFileSync(file, md);
    writeFileSync(join(benchResultsDir, `circulars-${new Date().toISOString().replace(/[:]/g, "")}.json`), JSON.stringify({ rooms: ROOMS, concurrency: CONCURRENCY, rawBefore, rawAfter, rawSerial, parallel, serial }, null, 1));
    console.log(`\n${md}`);
    log(`written to ${file}`);
  } catch (err) {
    // The work directory goes with the stack: show the end of Kuvert's log first.
    try {
      const lines = readFileSync(join(bench.stack.workDir, "kuvert.log"), "utf8").trim().split("\n");
      console.error(lines.slice(-12).map((l) => l.slice(0, 400)).join("\n"));
    } catch {
      // no log
    }
    throw err;
  } finally {
    await db?.close().catch(() => undefined);
    log("stopping the stack");
    await bench.stop().catch((err: unknown) => log(`stopping: ${(err as Error).message}`));
    bench.cluster?.stop();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
