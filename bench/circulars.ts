// Circulars, measured: one circular with a 2 MB attachment to 1,000 organisation rooms, fanned
// out by Kuvert (a child process of its own) to the homeserver (the test homeserver or a fresh
// Synapse). Reported next to the same fan-out done one room at a time (circulars.concurrency 1)
// and to the homeserver's raw send rate — the same events sent straight to it by a bare client
// in this process, one at a time and with Kuvert's concurrency — measured in the same run.
// See bench/README.md.
//
//   node bench/circulars.ts            1,000 rooms
//   node bench/circulars.ts --quick    100 rooms (a smoke check)
// Options: --concurrency=N (circulars.concurrency of the measured run; default Kuvert's default),
// --homeserver=synapse|test (default: Synapse when KUVERT_TEST_SYNAPSE is set), --rooms=N,
// --encryption (the cost of end-to-end encryption: Kuvert with its bot's device, e2ee.secret set;
// N more organisations, tag bench-enc, whose rooms are switched to encryption through the admin
// API; every organisation, encrypted or not, has a clerk with a Matrix account and a real crypto
// device who joined its room; right after Kuvert's circular to the N unencrypted rooms, the same
// circular to the N encrypted ones, at the same concurrency; both fan-out rates, encrypted ÷
// unencrypted, and Kuvert's peak RSS in each).
import { Buffer } from "node:buffer";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import { execFileSync } from "node:child_process";
import { openDatabase, type Database } from "../appservice/db/database.ts";
import { configSchema } from "../appservice/config/composed.ts";
import { transactionId } from "../appservice/matrix/homeserver.ts";
import { messageContent, renderMarkdown } from "../appservice/circulars/markdown.ts";
import { documentChunks } from "./content.ts";
import { clerksFor, deviceRequestCounts, deviceRequestsLine, encryptedEventsTotal, joinRooms, roomAlgorithm, switchToEncryption, waitForBotDevice } from "./clerks.ts";
import { CpuMeter, cpuSecondsOf, log, MemorySampler, mib, pool, sleep, type MemoryReport } from "./measure.ts";
import { benchResultsDir, clamdPid, homeserverChoiceOrExit, postgresCpuSeconds, startBenchStack, startKuvertChild, type BenchStack } from "./stack.ts";

const choice = homeserverChoiceOrExit();
const homeserver = choice.kind;
const args = choice.rest;
const quick = args.includes("--quick");
const concurrencyArg = args.find((a) => a.startsWith("--concurrency="));
const roomsArg = args.find((a) => a.startsWith("--rooms="));
const encryption = args.includes("--encryption");
for (const a of args) {
  if (a !== "--quick" && a !== "--encryption" && !/^--concurrency=\d+$/.test(a) && !/^--rooms=\d+$/.test(a)) {
    console.error(`unknown argument ${a}; usage: node bench/circulars.ts [--quick] [--homeserver=synapse|test] [--concurrency=N] [--rooms=N] [--encryption]`);
    process.exit(2);
  }
}
const ROOMS = roomsArg ? Number(roomsArg.split("=")[1]) : quick ? 100 : 1000;
const variant = [...(roomsArg ? [`rooms-${ROOMS}`] : quick ? ["quick"] : []), ...(homeserver === "synapse" ? ["synapse"] : []), ...(encryption ? ["encryption"] : [])].join("-");
const ATTACHMENT_BYTES = 2 * 1000 * 1000;
const defaultConcurrency = configSchema.parse({}).circulars.concurrency;
const CONCURRENCY = concurrencyArg ? Number(concurrencyArg.split("=")[1]) : defaultConcurrency;

const f1 = (n: number) => n.toFixed(1);

function attachment(): Buffer {
  return Buffer.concat([...documentChunks("circular-attachment", ATTACHMENT_BYTES)]);
}

const ATTACHMENT_NAME = "Beitragsordnung 2027.pdf";
const TEXT = "# Rundschreiben 2026/14\n\nSehr geehrte Damen und Herren,\n\nab dem **1. Januar 2027** gilt die neue Beitragsordnung (Anlage). Bitte beachten Sie insbesondere:\n\n- die geänderten Fristen\n- das neue Aktenzeichen-Format\n\nMit freundlichen Grüßen";

/** The ids of `count` organisations: circ-org-0001 … (or another prefix of nine characters, e.g. circ-enc-). */
function organisationIds(count: number, prefix = "circ-org-"): string[] {
  return Array.from({ length: count }, (_, i) => `${prefix}${String(i + 1).padStart(4, "0")}`);
}

/**
 * Creates the organisations with the tag (the circular's target), one clerk each (an e-mail
 * address; with `matrixIds`, also that clerk's Matrix ID, whom Kuvert invites), and waits until
 * every room is ready.
 */
async function createOrganisations(bench: BenchStack, count: number, opts: { prefix?: string; tag?: string; matrixIds?: Map<string, string> } = {}): Promise<{ ids: string[]; rooms: Map<string, string>; seconds: number }> {
  const { stack } = bench;
  const tag = opts.tag ?? "bench";
  const ids = organisationIds(count, opts.prefix);
  const started = performance.now();
  let created = 0;
  const progress = setInterval(() => log(`  ${created}/${ids.length} organisations created`), 15_000);
  await pool(ids, 8, async (id) => {
    const matrixId = opts.matrixIds?.get(id);
    const res = await stack.api("POST", "/api/v1/organisations", { id, name: `Organisation ${id.slice(9)}`, tags: [tag], clerks: [{ ...(matrixId ? { matrixId } : {}), email: `clerk@${id}.example` }] });
    if (res.status !== 201 && res.status !== 200) throw new Error(`creating ${id}: ${res.status} ${JSON.stringify(res.body)}`);
    created++;
  }).finally(() => clearInterval(progress));
  const deadline = Date.now() + 30 * 60_000;
  const rooms = new Map<string, string>();
  let reported = Date.now();
  for (;;) {
    const res = await stack.api<{ organisations: { id: string; roomState: string; roomId: string | null }[] }>("GET", `/api/v1/organisations?limit=5000&tag=${tag}`);
    for (const o of res.body.organisations) if (o.roomState === "ready" && o.roomId) rooms.set(o.id, o.roomId);
    if (rooms.size === ids.length) break;
    if (Date.now() > deadline) throw new Error(`only ${rooms.size} of ${ids.length} organisation rooms became ready`);
    if (Date.now() - reported > 15_000) {
      log(`  ${rooms.size}/${ids.length} rooms ready`);
      reported = Date.now();
    }
    await sleep(1000);
  }
  return { ids, rooms, seconds: (performance.now() - started) / 1000 };
}

interface RawResult {
  concurrency: number;
  sends: number;
  /** The attachment's upload (once) → the last room's file event. */
  seconds: number;
  /** The room sends only (as Kuvert's fan-out is measured). */
  sendSeconds: number;
  perSecond: number;
  cpu: Record<string, number>;
}

/**
 * The homeserver alone, from a bare client: the attachment uploaded once, then the same two
 * events per room Kuvert sends (the rendered circular, the m.file), PUT straight to it as
 * Kuvert's bot, `concurrency` rooms at a time, the two events of a room one after the other.
 */
async function rawSends(bench: BenchStack, rooms: string[], concurrency: number, label: string, cpuGroups: Record<string, () => number>): Promise<RawResult> {
  const { stack } = bench;
  const base = bench.access.url;
  const auth = `Bearer ${stack.registration.as_token}`;
  let sent = 0;
  const progress = setInterval(() => log(`  bare client ${label}: ${sent}/${rooms.length} rooms`), 15_000);
  const cpu = new CpuMeter(cpuGroups);
  const started = performance.now();
  try {
    const upload = await fetch(`${base}/_matrix/media/v3/upload?filename=${encodeURIComponent(ATTACHMENT_NAME)}`, {
      method: "POST",
      headers: { authorization: auth, "content-type": "application/pdf" },
      body: new Uint8Array(attachment()),
    });
    if (!upload.ok) throw new Error(`raw upload: ${upload.status} ${await upload.text()}`);
    const mxc = ((await upload.json()) as { content_uri: string }).content_uri;
    const text = messageContent(renderMarkdown(TEXT));
    const file = { msgtype: "m.file", body: ATTACHMENT_NAME, filename: ATTACHMENT_NAME, url: mxc, info: { mimetype: "application/pdf", size: ATTACHMENT_BYTES } };
    const sendsStarted = performance.now();
    await pool(rooms, concurrency, async (roomId, i) => {
      for (const [part, content] of [
        ["text", text],
        ["file", file],
      ] as const) {
        const res = await fetch(`${base}/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/${transactionId(`raw:${label}:${i}:${part}`)}`, {
          method: "PUT",
          headers: { authorization: auth, "content-type": "application/json" },
          body: JSON.stringify(content),
        });
        if (!res.ok) throw new Error(`raw send: ${res.status} ${await res.text()}`);
        await res.arrayBuffer();
      }
      sent++;
    });
    const ended = performance.now();
    const sendSeconds = (ended - sendsStarted) / 1000;
    return { concurrency, sends: rooms.length * 2, seconds: (ended - started) / 1000, sendSeconds, perSecond: (rooms.length * 2) / sendSeconds, cpu: cpu.stop() };
  } finally {
    clearInterval(progress);
  }
}

/**
 * Media Kuvert's bot has uploaded so far: counted by the test homeserver, or on Synapse through
 * its admin API (GET /_synapse/admin/v1/users/{userId}/media, "total").
 */
async function botUploads(bench: BenchStack): Promise<number> {
  if (bench.hs) return bench.hs.faults.requests("*", /^\/_matrix\/media\/v3\/upload/);
  const res = await fetch(`${bench.access.url}/_synapse/admin/v1/users/${encodeURIComponent(bench.stack.botUserId)}/media?limit=1`, { headers: { authorization: `Bearer ${bench.access.adminToken}` } });
  if (!res.ok) throw new Error(`counting the bot's media: ${res.status} ${await res.text()}`);
  return ((await res.json()) as { total: number }).total;
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
  /** Kuvert's memory from the POST until every room was served (VmHWM reset at the start). */
  memory: MemoryReport;
  /** Events Kuvert's device encrypted meanwhile (kuvert_e2ee_encrypted_events_total; NaN without --encryption). */
  encryptedEvents: number;
  /** Which organisations the circular went to (their tag). */
  tag: string;
  /** With --encryption on the test homeserver: the device's requests (and the members lookups) meanwhile, per room event. */
  deviceRequests?: string;
}

async function kuvertCircular(bench: BenchStack, db: Database, rooms: number, concurrency: number, cpuGroups: Record<string, () => number>, kuvertPid: number, tag = "bench"): Promise<KuvertResult> {
  const { stack, hs } = bench;
  const uploadsBefore = await botUploads(bench);
  const sendsBefore = hs?.faults.requests("PUT", /\/send\/m\.room\.(message|encrypted)\//);
  const encryptedBefore = encryption ? await encryptedEventsTotal(bench.metricsUrl) : NaN;
  const requestsBefore = encryption ? deviceRequestCounts(bench) : undefined;
  const form = new FormData();
  form.append("text", TEXT);
  form.append("targets", JSON.stringify({ tag }));
  form.append("attachment", new Blob([new Uint8Array(attachment())], { type: "application/pdf" }), ATTACHMENT_NAME);
  await sleep(1000); // let Kuvert settle (GC, the last progress edits) so the peak is this circular's own
  const memory = new MemorySampler(kuvertPid, 100);
  const cpu = new CpuMeter(cpuGroups);
  const started = Date.now();
  const res = await fetch(`${stack.publicUrl}/api/v1/circulars`, { method: "POST", headers: { authorization: `Bearer ${stack.adminToken}` }, body: form });
  const body = (await res.json()) as { id?: string; error?: string };
  if (res.status !== 201 || !body.id) throw new Error(`the circular was refused: ${res.status} ${JSON.stringify(body)}`);
  const id = body.id;
  let last = "";
  let lastLogged = Date.now();
  for (;;) {
    const { rows } = await db.query<{ state: string; finished_at: Date | null; pending: string }>("SELECT c.state, c.finished_at, (SELECT count(*) FROM circular_deliveries d WHERE d.circular_id = c.id AND d.state = 'pending') AS pending FROM circulars c WHERE c.id = $1", [id]);
    const r = rows[0]!;
    const line = `${r.state}, ${r.pending} pending`;
    if (line !== last && (Number(r.pending) % 100 === 0 || Date.now() - lastLogged > 10_000)) {
      log(`  ${line}`);
      lastLogged = Date.now();
    }
    last = line;
    if (r.state === "sent" || r.state === "stopped") break;
    if (Date.now() - started > 60 * 60_000) throw new Error("the circular did not finish within an hour");
    await sleep(250);
  }
  const cpuSeconds = cpu.stop();
  const mem = memory.stop();
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
  if (hs && sendsBefore !== undefined) {
    const allSends = hs.faults.requests("PUT", /\/send\/m\.room\.(message|encrypted)\//) - sendsBefore;
    log(`  ${allSends - roomSends} other sends (progress edits in the staff room)`);
  }
  return {
    concurrency,
    rooms,
    wallSeconds: (t.finished.getTime() - started) / 1000,
    prepareSeconds: (t.opened.getTime() - started) / 1000,
    fanoutSeconds,
    sends: roomSends,
    perSecond: roomSends / fanoutSeconds,
    uploads: (await botUploads(bench)) - uploadsBefore,
    delivered: n("delivered"),
    failed: n("failed"),
    cpu: cpuSeconds,
    memory: mem,
    encryptedEvents: encryption ? (await encryptedEventsTotal(bench.metricsUrl)) - encryptedBefore : NaN,
    tag,
    ...(encryption && bench.hs ? { deviceRequests: deviceRequestsLine(requestsBefore, deviceRequestCounts(bench), roomSends) } : {}),
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
  return Object.entries(cpu)
    .map(([k, v]) => `${k} ${f1(v)}`)
    .join(" · ");
}

const f2 = (n: number) => n.toFixed(2);

/** A warning row when processes outside the stack took more than 5 % of the machine during a circular. */
function disturbance(r: KuvertResult): string | undefined {
  const capacity = os.cpus().length * r.wallSeconds;
  const other = r.cpu.other ?? 0;
  if (!(other > 0.05 * capacity)) return undefined;
  return `| | ⚠ disturbed | processes outside the stack used ${f1(other)} CPU-s (${Math.round((100 * other) / capacity)} % of the machine) during this circular: figures are lower than on a quiet machine | quiet |`;
}

/** With --encryption: the circular to the encrypted rooms, and encrypted ÷ unencrypted against the one before it. */
function encryptedRows(clear: KuvertResult, enc: KuvertResult, perRoomLine: (cpu: Record<string, number>) => string): string[] {
  const rooms = enc.rooms;
  const kuvertPerRoom = (r: KuvertResult) => (1000 * (r.cpu.kuvert ?? NaN)) / r.rooms;
  const stackPerRoom = (r: KuvertResult) => (1000 * ["kuvert", "synapse", "postgres", "clamd"].reduce((t, k) => t + (r.cpu[k] ?? 0), 0)) / r.rooms;
  const rows = [`| | peak RSS of the Kuvert process (VmHWM, reset at the POST) | ${mib(clear.memory.hwmBytes)} MiB (sampled max ${mib(clear.memory.sampledPeakRssBytes)} MiB; ${mib(clear.memory.startRssBytes)} MiB at the start) | — |`];
  const warnClear = disturbance(clear);
  if (warnClear) rows.push(warnClear);
  rows.push(
    `| Kuvert, ${enc.concurrency} rooms at a time, **encrypted rooms** (one clerk with a crypto device each) | wall time (POST → every room served) | ${f1(enc.wallSeconds)} s (receive, scan, encrypt and upload ${f1(enc.prepareSeconds)} s · fan-out ${f1(enc.fanoutSeconds)} s) | — |`,
    `| | room sends (text + file per room, each encrypted) | ${enc.sends} in ${f1(enc.fanoutSeconds)} s: **${f1(enc.perSecond)} sends/s**; ${enc.delivered} delivered, ${enc.failed} failed | — |`,
    `| | events the bot's device encrypted | ${enc.encryptedEvents} (${f2(enc.encryptedEvents / rooms)}/room) | 2/room |`,
    `| | attachment uploads | ${enc.uploads} (one encrypted copy) | 1 |`,
    `| | CPU per room | ${perRoomLine(enc.cpu)} | — |`,
    `| | peak RSS of the Kuvert process (VmHWM, reset at the POST) | ${mib(enc.memory.hwmBytes)} MiB (sampled max ${mib(enc.memory.sampledPeakRssBytes)} MiB; ${mib(enc.memory.startRssBytes)} MiB at the start) | — |`,
  );
  if (enc.deviceRequests) rows.push(`| | members lookups and the device's requests, as the test homeserver counted them (2 events per room) | encrypted: ${enc.deviceRequests}; unencrypted: ${clear.deviceRequests ?? "—"} | — |`);
  const warnEnc = disturbance(enc);
  if (warnEnc) rows.push(warnEnc);
  rows.push(
    `| Encryption's cost (same run) | fan-out sends/s, encrypted ÷ unencrypted | **${f2(enc.perSecond / clear.perSecond)}** (${f1(enc.perSecond)} ÷ ${f1(clear.perSecond)}) | — |`,
    `| | wall time (POST → every room served), encrypted ÷ unencrypted | ${f2(enc.wallSeconds / clear.wallSeconds)} (${f1(enc.wallSeconds)} s ÷ ${f1(clear.wallSeconds)} s) | — |`,
    `| | peak RSS of Kuvert, encrypted · unencrypted | ${mib(enc.memory.hwmBytes)} · ${mib(clear.memory.hwmBytes)} MiB: ${f2(enc.memory.hwmBytes / clear.memory.hwmBytes)}× (${enc.memory.hwmBytes >= clear.memory.hwmBytes ? "+" : "−"}${mib(Math.abs(enc.memory.hwmBytes - clear.memory.hwmBytes))} MiB) | — |`,
    `| | Kuvert's CPU per room, encrypted · unencrypted | ${f1(kuvertPerRoom(enc))} · ${f1(kuvertPerRoom(clear))} ms: ${f2(kuvertPerRoom(enc) / kuvertPerRoom(clear))}× | — |`,
    `| | the stack's CPU per room, encrypted · unencrypted | ${f1(stackPerRoom(enc))} · ${f1(stackPerRoom(clear))} ms: ${f2(stackPerRoom(enc) / stackPerRoom(clear))}× | — |`,
  );
  return rows;
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
  log(`starting the stack on ${homeserver === "synapse" ? `a fresh Synapse (KUVERT_TEST_SYNAPSE=${process.env.KUVERT_TEST_SYNAPSE})` : "the test homeserver"}; ${ROOMS} rooms, circulars.concurrency ${CONCURRENCY}`);
  const bench = await startBenchStack({
    name: `bench-circulars-${variant || "full"}`,
    clamdStreamMaxLength: "100M",
    homeserverMaxUploadBytes: 50 * 1024 * 1024,
    homeserver,
    encryption,
    configure: (raw) => {
      (raw.publicApi as Record<string, unknown>).rateLimitPerMinute = 1_000_000;
      raw.circulars = { concurrency: CONCURRENCY };
    },
  });
  let db: Database | undefined;
  try {
    const { stack } = bench;
    db = await openDatabase({ url: stack.config.database.url, embeddedDir: "", poolSize: 2 });
    log(`homeserver: ${bench.homeserverLabel} at ${bench.access.url}${bench.synapsePid ? ` (pid ${bench.synapsePid})` : ""}`);
    // With --encryption every organisation, encrypted or not, gets a clerk with a crypto device
    // who joins its room: the two sets differ in encryption only.
    const made = encryption ? await clerksFor(bench.access, [...organisationIds(ROOMS), ...organisationIds(ROOMS, "circ-enc-")]) : undefined;
    const clerks = made?.clerks;
    const matrixIds = made?.matrixIds;
    const clerkSeconds = made?.seconds ?? 0;
    log(`creating ${ROOMS} organisations and their rooms`);
    const orgs = await createOrganisations(bench, ROOMS, { matrixIds });
    log(`  ${orgs.rooms.size} rooms ready in ${f1(orgs.seconds)} s`);
    let encryptionSetup: { organisationSeconds: number; joinSeconds: number; switchSeconds: number; deviceId: string; crossSigned: boolean } | undefined;
    if (clerks && matrixIds) {
      log(`creating ${ROOMS} organisations to be encrypted (tag bench-enc)`);
      const encOrgs = await createOrganisations(bench, ROOMS, { prefix: "circ-enc-", tag: "bench-enc", matrixIds });
      log(`  ${encOrgs.rooms.size} rooms ready in ${f1(encOrgs.seconds)} s; the clerks join`);
      const allRooms = new Map([...orgs.rooms, ...encOrgs.rooms]);
      let t = performance.now();
      await joinRooms(bench.access, clerks, allRooms);
      const joinSeconds = (performance.now() - t) / 1000;
      const device = await waitForBotDevice(bench);
      log(`  joined in ${f1(joinSeconds)} s; the bot's device ${device.deviceId} is ready (cross-signed: ${device.crossSigned}); switching ${encOrgs.ids.length} rooms to encryption`);
      t = performance.now();
      await switchToEncryption(bench, encOrgs.ids);
      const switchSeconds = (performance.now() - t) / 1000;
      await pool([...allRooms], 8, async ([id, roomId]) => {
        const algorithm = await roomAlgorithm(bench.access, clerks!.get(id)!.accessToken, roomId);
        const wanted = id.startsWith("circ-enc-") ? "m.megolm.v1.aes-sha2" : null;
        if (algorithm !== wanted) throw new Error(`${id}'s room has m.room.encryption ${algorithm}, not ${wanted}`);
      });
      log(`  switched in ${f1(switchSeconds)} s`);
      encryptionSetup = { organisationSeconds: encOrgs.seconds, joinSeconds, switchSeconds, deviceId: device.deviceId, crossSigned: device.crossSigned };
    }
    const roomIds = [...orgs.rooms.values()];
    const kuvertPid = () => stack.child?.pid ?? 0;
    const clamd = clamdPid(bench.clamd);

    const synapsePid = bench.synapsePid;
    const groups: Record<string, () => number> = {
      kuvert: () => cpuSecondsOf(kuvertPid()),
      ...(synapsePid ? { synapse: () => cpuSecondsOf(synapsePid) } : {}),
      postgres: () => postgresCpuSeconds(bench.cluster),
      clamd: () => (clamd ? cpuSecondsOf(clamd) : 0),
    };
    const rawLine = (r: RawResult) => `  ${r.sends} sends in ${f1(r.sendSeconds)} s: ${f1(r.perSecond)}/s (with the upload ${f1(r.seconds)} s); CPU ${cpuLine(r.cpu)}`;

    log("warm-up: the raw send path once over 50 rooms");
    await rawSends(bench, roomIds.slice(0, 50), CONCURRENCY, "warm", groups);

    // The bare client one at a time and with Kuvert's concurrency, before Kuvert and again after
    // it in the reverse order, so that drift (rooms growing, the machine's load) evens out.
    log(`bare client on ${bench.homeserverLabel}, one room at a time`);
    const rawSerialBefore = await rawSends(bench, roomIds, 1, "serial-before", groups);
    log(rawLine(rawSerialBefore));
    log(`bare client, ${CONCURRENCY} rooms at a time`);
    const rawBefore = await rawSends(bench, roomIds, CONCURRENCY, "before", groups);
    log(rawLine(rawBefore));

    log(`Kuvert, circulars.concurrency ${CONCURRENCY}`);
    const parallel = await kuvertCircular(bench, db, ROOMS, CONCURRENCY, groups, kuvertPid());
    log(`  ${parallel.delivered} delivered, ${parallel.failed} failed; wall ${f1(parallel.wallSeconds)} s, fan-out ${f1(parallel.fanoutSeconds)} s: ${f1(parallel.perSecond)} sends/s; uploads ${parallel.uploads}; CPU ${cpuLine(parallel.cpu)}`);

    let encrypted: KuvertResult | undefined;
    if (encryption) {
      // Right after the unencrypted circular, at the same concurrency: the two differ in encryption only.
      log(`Kuvert, circulars.concurrency ${CONCURRENCY}, the same circular to the ${ROOMS} encrypted rooms`);
      encrypted = await kuvertCircular(bench, db, ROOMS, CONCURRENCY, groups, kuvertPid(), "bench-enc");
      log(
        `  ${encrypted.delivered} delivered, ${encrypted.failed} failed; wall ${f1(encrypted.wallSeconds)} s, fan-out ${f1(encrypted.fanoutSeconds)} s: ${f1(encrypted.perSecond)} sends/s (${f2(encrypted.perSecond / parallel.perSecond)} of unencrypted); uploads ${encrypted.uploads}; ${encrypted.encryptedEvents} events encrypted; peak RSS ${mib(encrypted.memory.hwmBytes)} MiB (unencrypted ${mib(parallel.memory.hwmBytes)}); CPU ${cpuLine(encrypted.cpu)}`,
      );
    }

    log(`bare client, ${CONCURRENCY} rooms at a time, again`);
    const rawAfter = await rawSends(bench, roomIds, CONCURRENCY, "after", groups);
    log(rawLine(rawAfter));

    log("Kuvert, one room at a time (circulars.concurrency 1)");
    await restartKuvert(bench, 1);
    const serial = await kuvertCircular(bench, db, ROOMS, 1, groups, kuvertPid());
    log(`  ${serial.delivered} delivered; wall ${f1(serial.wallSeconds)} s, fan-out ${f1(serial.fanoutSeconds)} s: ${f1(serial.perSecond)} sends/s; CPU ${cpuLine(serial.cpu)}`);

    log("bare client, one room at a time, again");
    const rawSerialAfter = await rawSends(bench, roomIds, 1, "serial-after", groups);
    log(rawLine(rawSerialAfter));

    const mean = (a: number, b: number) => (a + b) / 2;
    const raw = mean(rawBefore.perSecond, rawAfter.perSecond);
    const rawSerial = mean(rawSerialBefore.perSecond, rawSerialAfter.perSecond);
    const rawWall = mean(rawBefore.seconds, rawAfter.seconds);
    const vsSerial = parallel.perSecond / serial.perSecond;
    const vsSerialWall = serial.wallSeconds / parallel.wallSeconds;
    const vsRaw = parallel.perSecond / raw;
    const serialVsRaw = serial.perSecond / rawSerial;
    const homeserverGain = raw / rawSerial;
    const perRoom = (cpu: Record<string, number>, k: string) => (cpu[k] === undefined ? "" : `${k} ${f1((1000 * cpu[k]!) / ROOMS)} ms`);
    const perRoomLine = (cpu: Record<string, number>) =>
      ["kuvert", "synapse", "postgres", "clamd"]
        .map((k) => perRoom(cpu, k))
        .filter(Boolean)
        .join(", ");
    const met = (ok: boolean) => (ok ? "met" : "not met");
    const date = new Date().toISOString().slice(0, 10);
    const md = [
      `## Circulars: one 2 MB attachment to ${ROOMS.toLocaleString("en")} rooms on the ${bench.homeserverLabel} (${date})`,
      "",
      `Machine: ${os.cpus().length} cores (${cpuModel}), Node ${process.version}, ${clamVersion}; Kuvert, PostgreSQL, clamd, ` +
        (bench.synapse ? `${bench.homeserverLabel} (a fresh one for this run, a process of its own) and this process (driver, bare client) share it.` : "and this process (driver + test homeserver) share it."),
      "",
      "| scenario | figure | measured | target |",
      "| --- | --- | --- | --- |",
      `| Kuvert, ${CONCURRENCY} rooms at a time | wall time (POST → every room served) | ${f1(parallel.wallSeconds)} s (receive, scan, upload ${f1(parallel.prepareSeconds)} s · fan-out ${f1(parallel.fanoutSeconds)} s) | — |`,
      `| | room sends (text + file per room) | ${parallel.sends} in ${f1(parallel.fanoutSeconds)} s: **${f1(parallel.perSecond)} sends/s**; ${parallel.delivered} delivered, ${parallel.failed} failed | — |`,
      `| | attachment uploads | ${parallel.uploads} | 1 |`,
      `| | CPU per room | ${perRoomLine(parallel.cpu)} | — |`,
      `| Kuvert, one room at a time | wall time | ${f1(serial.wallSeconds)} s (fan-out ${f1(serial.fanoutSeconds)} s: ${f1(serial.perSecond)} sends/s) | — |`,
      `| bare client, ${CONCURRENCY} rooms at a time | send rate (same events, attachment uploaded once) | ${f1(rawBefore.perSecond)}/s before, ${f1(rawAfter.perSecond)}/s after (mean **${f1(raw)}/s**); with the upload ${f1(rawWall)} s | — |`,
      `| | CPU per room | ${perRoomLine(rawBefore.cpu)} (before) · ${perRoomLine(rawAfter.cpu)} (after) | — |`,
      `| bare client, one room at a time | send rate | ${f1(rawSerialBefore.perSecond)}/s before, ${f1(rawSerialAfter.perSecond)}/s after (mean ${f1(rawSerial)}/s) | — |`,
      `| Kuvert ÷ bare client | ${CONCURRENCY} at a time (fan-out ÷ send rate) | **${vsRaw.toFixed(2)}** (${met(vsRaw >= 0.85)}) | ≥ 0.85 |`,
      `| | wall time, bare client ÷ Kuvert (upload + sends ÷ POST → last room) | ${(rawWall / parallel.wallSeconds).toFixed(2)} | — |`,
      `| | one at a time | ${serialVsRaw.toFixed(2)} | — |`,
      `| concurrency gain, ${CONCURRENCY} ÷ one at a time | the homeserver's own (bare client) | ${f2(homeserverGain)}× | — |`,
      `| | Kuvert's | **${f2(vsSerial)}×** (fan-out) · ${f2(vsSerialWall)}× (wall) | ≥ 5× |`,
      `| | Kuvert's ÷ the homeserver's | **${(vsSerial / homeserverGain).toFixed(2)}** (${met(vsSerial / homeserverGain >= 0.9)}) | ≥ 0.9 |`,
      ...(encrypted && encryptionSetup ? encryptedRows(parallel, encrypted, perRoomLine) : []),
      "",
      `CPU seconds during the ${CONCURRENCY}-at-a-time circular: ${cpuLine(parallel.cpu)}; one at a time: ${cpuLine(serial.cpu)}${encrypted ? `; to the encrypted rooms: ${cpuLine(encrypted.cpu)}` : ""}.`,
      "",
      ...(encrypted && encryptionSetup
        ? [
            `**With --encryption:** Kuvert ran with end-to-end encryption on (e2ee.secret, its bot's device ${encryptionSetup.deviceId}${encryptionSetup.crossSigned ? ", cross-signed" : ""}; new rooms unencrypted). Every organisation, of the ${ROOMS} unencrypted (tag bench) and of the ${ROOMS} encrypted (tag bench-enc), had one clerk with a Matrix account, a crypto device with published keys, and a joined room. ` +
              `The encrypted rooms were switched through the admin API before the measurements (Kuvert's notice of the switch was each room's first Megolm session, shared with the clerk's device then); the circular to them ran right after the one to the unencrypted rooms, at the same concurrency. ` +
              `Setup, outside every figure: ${2 * ROOMS} clerks in ${f1(clerkSeconds)} s, the encrypted organisations' rooms ready in ${f1(encryptionSetup.organisationSeconds)} s, every clerk joined in ${f1(encryptionSetup.joinSeconds)} s, ${ROOMS} rooms switched in ${f1(encryptionSetup.switchSeconds)} s.`,
            "",
          ]
        : []),
    ].join("\n");
    mkdirSync(benchResultsDir, { recursive: true });
    const suffix = variant ? `-${variant}` : "";
    const file = join(benchResultsDir, `circulars-${date}${suffix}.md`);
    writeFileSync(file, md);
    writeFileSync(
      join(benchResultsDir, `circulars-${new Date().toISOString().replace(/[:]/g, "")}${suffix}.json`),
      JSON.stringify({ rooms: ROOMS, concurrency: CONCURRENCY, homeserver: bench.homeserverLabel, rawSerialBefore, rawBefore, parallel, rawAfter, serial, rawSerialAfter, ...(encrypted ? { encrypted, encryptionSetup, clerkSeconds } : {}) }, null, 1),
    );
    console.log(`\n${md}`);
    log(`written to ${file}`);
  } catch (err) {
    // The work directory goes with the stack: show the end of Kuvert's log first.
    try {
      const lines = readFileSync(join(bench.stack.workDir, "kuvert.log"), "utf8").trim().split("\n");
      console.error(
        lines
          .slice(-12)
          .map((l) => l.slice(0, 400))
          .join("\n"),
      );
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
