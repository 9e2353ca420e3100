// Outbound documents, measured: throughput end to end (drop API → staging → clamd →
// homeserver media → room event) and the memory of the Kuvert process, next to clamd's raw
// INSTREAM throughput on the same bytes and to a bare client doing Kuvert's homeserver work
// for the same documents (media upload, the notice, the file event). See bench/README.md.
//
//   node bench/documents.ts            the full benchmark (1,000 mixed documents, one 1 GiB document)
//   node bench/documents.ts --quick    a smoke check (50 documents, one 100 MiB document)
// Options: --homeserver=synapse|test (default: Synapse when KUVERT_TEST_SYNAPSE is set),
// --only=a|b (one scenario), --profile (Kuvert writes a V8 CPU profile to
// bench/results/profiles/ when it stops), --memory-probe (Kuvert
// writes its heap and buffer figures to bench/results/memory-probe-*.jsonl, see bench/memory-probe.ts),
// --kuvert-node-options="…" (extra Node options for the Kuvert process, e.g. V8 flags),
// --processes=1,2,3 (instead of scenarios A and B: the mixed set through 1, then 2, then 3 Kuvert
// processes on the same database, staging, homeserver and clamd; see bench/processes.ts),
// --encryption (the cost of end-to-end encryption: Kuvert with its bot's device, e2ee.secret set,
// new rooms still unencrypted; every organisation gets a clerk with a Matrix account and a real
// crypto device that joins its room; after scenario A, "A-encrypted": the same mixed set into as
// many organisations again, bench-enc-001 …, whose rooms were switched to encryption through the
// admin API; reported side by side, with encrypted ÷ unencrypted measured in the same run).
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import { openDatabase, type Database } from "../appservice/db/database.ts";
import { ClamdScanner } from "../appservice/scanning/scanner.ts";
import { createToken } from "../appservice/tokens/tokens.ts";
import { documentStream, mixedSet, type PlannedDocument } from "./content.ts";
import { homeserverRequestStats, log, MemorySampler, mib, percentile, pool, processStartEpochMs, requestStatsSince, sampleInFlightLimit, sleep, sum, type MemoryReport, type RequestStats } from "./measure.ts";
import { clamdBaseline, hasAsyncUpload, rawBaseline, type Baseline, type RawRun } from "./baselines.ts";
import { clerksFor, deviceRequestCounts, deviceRequestsLine, encryptedEventsTotal, joinRooms, roomAlgorithm, switchToEncryption, waitForBotDevice } from "./clerks.ts";
import { cpuMeter, createOrganisations, drop, organisationIds, settle, statesByApi, type Env, type Finished, type Upload } from "./drop.ts";
import { scaleOut, scaleReport } from "./processes.ts";
import { cpuGroups, type CpuGroups } from "./cpugroups.ts";
import { benchResultsDir, clamdPid, homeserverChoiceOrExit, postgresPids, startBenchStack } from "./stack.ts";

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;
const MB = 1e6;

const choice = homeserverChoiceOrExit();
const homeserver = choice.kind;
const args = new Set(choice.rest);
const quick = args.has("--quick");
const profile = args.has("--profile");
const memoryProbe = args.has("--memory-probe");
const encryption = args.has("--encryption");
const sharedCpu = args.has("--shared-cpu");
const kuvertNodeOptions = [...args].find((a) => a.startsWith("--kuvert-node-options="))?.slice("--kuvert-node-options=".length);
const only = [...args].find((a) => a.startsWith("--only="))?.slice("--only=".length);
const processCounts = [...args]
  .find((a) => a.startsWith("--processes="))
  ?.slice("--processes=".length)
  .split(",")
  .map(Number);
for (const a of args) {
  if (!["--quick", "--profile", "--memory-probe", "--encryption", "--shared-cpu"].includes(a) && !/^--only=[ab]$/.test(a) && !a.startsWith("--kuvert-node-options=") && !/^--processes=[1-9](,[1-9])*$/.test(a)) {
    console.error(`unknown argument ${a}; usage: node bench/documents.ts [--quick] [--homeserver=synapse|test] [--only=a|b] [--encryption] [--processes=1,2,3] [--shared-cpu] [--profile] [--memory-probe] [--kuvert-node-options="..."]`);
    process.exit(2);
  }
}
if (encryption && (processCounts || only === "b")) {
  console.error("--encryption runs scenario A twice (unencrypted, then encrypted): not with --processes or --only=b");
  process.exit(2);
}

const plan = quick ? { label: "quick", documents: 50, organisations: 10, uploadConcurrency: 8, bigBytes: 100 * MiB } : { label: "full", documents: 1000, organisations: 200, uploadConcurrency: 8, bigBytes: 1 * GiB };
/** Kuvert's documents.maxBytes and scanning.maxStreamBytes: 1.1 GiB. */
/** Names this run in the report and the file names: quick or full, and any experiment or partial run. */
const variant = [plan.label, ...(homeserver === "synapse" ? ["synapse"] : []), ...(only ? [`only-${only}`] : []), ...(encryption ? ["encryption"] : []), ...(processCounts ? [`processes-${processCounts.join("")}`] : []), ...(kuvertNodeOptions ? ["node-options"] : [])].join("-");
/** How the processes shared the CPU, for the report's header. */
let cpuSharing = "";
const kuvertLimitBytes = Math.round(1.1 * GiB);
const clamdStreamMaxLength = "1200M";

// The scenarios

interface ScenarioResult {
  name: string;
  documents: number;
  bytes: number;
  uploads: Upload[];
  accepted: number;
  delivered: number;
  rejected: number;
  apiStates: Record<string, number>;
  /** First upload started → last document delivered (Kuvert's finished_at). */
  seconds: number;
  /** First upload started → last upload answered. */
  uploadSeconds: number;
  /** When the scenario started and when its end was seen (epoch ms). */
  startedAt: number;
  endedAt: number;
  /** With --profile: the scenario's window in seconds since Kuvert's process started. */
  profileWindow?: { from: number; to: number };
  memory: MemoryReport;
  cpu: Record<string, number>;
  /** The wall time the CPU figures cover (the scenario, until its end was seen). */
  cpuWallSeconds: number;
  /** The same split in two: while the uploads arrived, and after the last was answered. */
  cpuPhases: { cpu: Record<string, number>; cpuWallSeconds: number }[];
  finished: Finished[];
  baseline: Baseline;
  /** The bare client on the same homeserver, before and after Kuvert (scenario A). */
  raw: RawRun[];
  /** Kuvert's requests to the homeserver during the scenario (from its metrics). */
  homeserverRequests: RequestStats;
  /** Kuvert's adaptive limit on documents in flight toward the homeserver, read once a second. */
  inFlightLimit: { min: number; max: number; mean: number } | undefined;
  /** With --encryption: what the bot's device encrypted during the scenario. */
  encrypted?: EncryptedSends;
  /** With --encryption on the test homeserver: the device's requests (and the members lookups) during the scenario, per event. */
  deviceRequests?: string;
}

/** With --encryption: the events Kuvert's device encrypted and sent while a scenario ran. */
interface EncryptedSends {
  /** kuvert_e2ee_encrypted_events_total, after − before. */
  events: number;
  /** e2ee_sends rows made during the scenario, and of them file events with an encrypted attachment (`file`) or a clear one (`url`). */
  rows: number;
  withEncryptedFile: number;
  withClearUrl: number;
  failed: number;
}

/** What the device encrypted since `before` (the counter's earlier reading) and `since` (epoch ms). */
async function encryptedSince(env: Env, before: number, since: number): Promise<EncryptedSends> {
  const { rows } = await env.db.query<{ n: number; file: number; url: number; failed: number }>(
    `SELECT count(*)::int AS n, (count(*) FILTER (WHERE content ? 'file'))::int AS file, (count(*) FILTER (WHERE content ? 'url'))::int AS url,
            (count(*) FILTER (WHERE state = 'failed'))::int AS failed
       FROM e2ee_sends WHERE created_at >= $1`,
    [new Date(since)],
  );
  const r = rows[0]!;
  return { events: (await encryptedEventsTotal(env.bench.metricsUrl)) - before, rows: r.n, withEncryptedFile: r.file, withClearUrl: r.url, failed: r.failed };
}

async function runScenario(env: Env, name: string, docs: PlannedDocument[], uploadConcurrency: number, baseline: Baseline): Promise<ScenarioResult> {
  await sleep(1000); // let Kuvert settle (GC, mail outbox) so the scenario starts from idle
  const requestsBefore = await homeserverRequestStats(env.bench.metricsUrl);
  const memory = new MemorySampler(env.kuvertPid, 100);
  const inFlightLimit = sampleInFlightLimit(env.bench.metricsUrl);
  const cpu = cpuMeter(env);
  const t0 = Date.now();
  const uploads: Upload[] = [];
  let answered = 0;
  const progress = setInterval(() => log(`  ${name}: ${answered}/${docs.length} uploads answered`), 15_000);
  try {
    await pool(docs, uploadConcurrency, async (doc) => {
      uploads.push(await drop(env, doc));
      answered++;
    });
  } finally {
    clearInterval(progress);
  }
  const uploadsDone = Date.now();
  const whileUploading = cpu.stop();
  const cpuAfterUploads = cpuMeter(env);
  const accepted = uploads.filter((u) => u.id);
  for (const u of uploads.filter((x) => !x.id).slice(0, 5)) log(`  upload of ${u.doc.name} (${u.doc.size} bytes) refused: ${u.error}`);
  log(`  ${name}: ${accepted.length}/${docs.length} accepted in ${((uploadsDone - t0) / 1000).toFixed(1)} s; waiting for delivery`);
  const finished = await settle(
    env,
    accepted.map((u) => u.id!),
  );
  const cpuUsed = cpu.stop();
  const afterUploads = cpuAfterUploads.stop();
  const limitSeen = inFlightLimit.stop();
  const endedAt = Date.now();
  const cpuWallSeconds = (endedAt - t0) / 1000;
  const mem = memory.stop();
  const lastFinished = finished.length ? Math.max(...finished.map((f) => f.finishedAt ?? 0)) : NaN;
  const homeserverRequests = requestStatsSince(requestsBefore, await homeserverRequestStats(env.bench.metricsUrl));
  const apiStates = await statesByApi(
    env,
    accepted.map((u) => u.id!),
  );
  return {
    name,
    documents: docs.length,
    bytes: sum(docs.map((d) => d.size)),
    uploads,
    accepted: accepted.length,
    delivered: finished.filter((f) => f.state === "delivered").length,
    rejected: finished.filter((f) => f.state === "rejected").length,
    apiStates,
    seconds: (lastFinished - t0) / 1000,
    uploadSeconds: (uploadsDone - t0) / 1000,
    startedAt: t0,
    endedAt,
    memory: mem,
    cpu: cpuUsed,
    cpuWallSeconds,
    cpuPhases: [
      { cpu: whileUploading, cpuWallSeconds: (uploadsDone - t0) / 1000 },
      { cpu: afterUploads, cpuWallSeconds: (endedAt - uploadsDone) / 1000 },
    ],
    finished,
    baseline,
    raw: [],
    homeserverRequests,
    inFlightLimit: limitSeen,
  };
}

// ---------------------------------------------------------------------------------------
// Report

function machineFacts(): Record<string, string> {
  const version = (cmd: string, argv: string[]) => {
    try {
      return execFileSync(cmd, argv, { encoding: "utf8" }).trim().split("\n")[0]!;
    } catch {
      return "unknown";
    }
  };
  const cpus = os.cpus();
  return {
    cores: `${cpus.length} × ${cpus[0]?.model.trim() ?? "unknown"}`,
    memory: `${(os.totalmem() / GiB).toFixed(1)} GiB`,
    node: process.version,
    kernel: `${os.type()} ${os.release()}`,
    clamd: version("/usr/sbin/clamd", ["--version"]),
  };
}

const f1 = (n: number) => n.toFixed(1);
const f2 = (n: number) => n.toFixed(2);
const mbps = (bytes: number, seconds: number) => f1(bytes / MB / seconds);

function memoryLine(m: MemoryReport): string {
  return `${mib(m.hwmBytes)} MiB${m.hwmReset ? "" : " (VmHWM not reset: process peak)"} (sampled max ${mib(m.sampledPeakRssBytes)} MiB; ${mib(m.startRssBytes)} MiB at start)`;
}

const cpuNames: Record<string, string> = {
  bench: homeserver === "synapse" ? "bench (driver)" : "bench+test homeserver",
  kernel: "kernel (interrupts, kernel threads)",
  other: "other processes",
};

/** Milliseconds of CPU per document for each process that does the work. */
function cpuPerDocument(cpu: Record<string, number>, documents: number): string {
  return ["kuvert", "synapse", "postgres", "clamd"]
    .filter((k) => cpu[k] !== undefined)
    .map((k) => `${k} ${Math.round((1000 * cpu[k]!) / documents)} ms`)
    .join(", ");
}

/** Requests per document by kind or method, with their mean duration. */
function requestsLine(stats: RequestStats, documents: number): string {
  return Object.entries(stats)
    .sort((x, y) => y[1].count - x[1].count)
    .map(([k, v]) => `${k} ${f2(v.count / documents)}/document, mean ${Math.round((1000 * v.seconds) / v.count)} ms`)
    .join("; ");
}

/** How much of the machine other processes took meanwhile (a disturbed run is slower than it would be). */
function otherShare(cpu: Record<string, number>, seconds: number): string {
  const share = (cpu.other ?? 0) / (os.cpus().length * seconds);
  return `other processes ${Math.round(100 * share)} % of the machine${share > 0.05 ? " ⚠" : ""}`;
}

/** The bare client's runs at one concurrency: their documents/s, and the mean rate. */
function rawAt(runs: RawRun[], concurrency: number): { runs: RawRun[]; perSecond: number; MBps: number } {
  const at = runs.filter((r) => r.concurrency === concurrency);
  const perSecond = sum(at.map((r) => r.documents / r.seconds)) / at.length;
  const MBps = sum(at.map((r) => r.bytes / MB / r.seconds)) / at.length;
  return { runs: at, perSecond, MBps };
}

function cpuLine(r: { cpu: Record<string, number>; cpuWallSeconds: number }): string {
  const capacity = os.cpus().length * r.cpuWallSeconds;
  const used = sum(Object.values(r.cpu));
  return (
    Object.entries(r.cpu)
      .map(([k, v]) => `${cpuNames[k] ?? k} ${f1(v)} s`)
      .join(", ") + ` — ${f1(used)} of ${f1(capacity)} CPU-s (${Math.round((100 * used) / capacity)} %)`
  );
}

/** A warning when processes outside the stack used more than 5 % of the machine. */
function disturbance(r: { cpu: Record<string, number>; cpuWallSeconds: number }): string | undefined {
  const capacity = os.cpus().length * r.cpuWallSeconds;
  const other = r.cpu.other ?? 0;
  if (!(other > 0.05 * capacity)) return undefined;
  return `| | ⚠ disturbed | processes outside the stack used ${f1(other)} CPU-s (${Math.round((100 * other) / capacity)} % of the machine) during this scenario: figures are lower than on a quiet machine | quiet |`;
}

/** What --encryption set up before the scenarios: clerks with devices, the second set of organisations, the switch. */
interface EncryptionSetup {
  clerks: number;
  clerkSeconds: number;
  organisations: number;
  organisationSeconds: number;
  joinSeconds: number;
  switchSeconds: number;
  oneTimeKeys: number;
  device: { deviceId: string; ed25519: string | null; crossSigned: boolean };
}

/** Scenario A-encrypted's rows: its own figures, then encrypted ÷ unencrypted against A of the same run. */
function encryptedLines(a: ScenarioResult, e: ScenarioResult, setup: EncryptionSetup): string[] {
  const lines: string[] = [];
  const label = `A-encrypted: the same ${e.documents} mixed documents (${f1(e.bytes / MB)} MB) to ${setup.organisations} other organisations, rooms switched to encryption, one clerk with a crypto device each`;
  const latencies = e.finished
    .filter((f) => f.finishedAt)
    .map((f) => {
      const u = e.uploads.find((x) => x.id === f.id)!;
      return (f.finishedAt! - u.startedAt) / 1000;
    });
  lines.push(`| ${label} | end to end (first upload → last delivered) | ${f1(e.seconds)} s: **${f1(e.documents / e.seconds)} documents/s, ${f1(e.bytes / MB / e.seconds)} MB/s** | — |`);
  lines.push(`| | uploads accepted (HTTP 202) | ${e.accepted}/${e.documents} in ${f1(e.uploadSeconds)} s | 100 % |`);
  lines.push(
    `| | delivered | ${e.delivered}/${e.accepted} (API says: ${Object.entries(e.apiStates)
      .map(([k, v]) => `${v} ${k}`)
      .join(", ")}) | all |`,
  );
  if (e.encrypted) {
    const x = e.encrypted;
    lines.push(`| | events the bot's device encrypted | ${x.events} (${f2(x.events / e.documents)}/document); file events with an encrypted attachment ${x.withEncryptedFile}, with a clear URL ${x.withClearUrl}; failed ${x.failed} | 2/document, no clear URL |`);
  }
  lines.push(`| | per document, upload start → delivered | p50 ${f1(percentile(latencies, 50))} s, p95 ${f1(percentile(latencies, 95))} s, max ${f1(Math.max(...latencies))} s | — |`);
  const homeserverPhase = e.finished.filter((f) => f.scannedAt !== null && f.finishedAt !== null).map((f) => (f.finishedAt! - f.scannedAt!) / 1000);
  lines.push(`| | per document, clean verdict → delivered (encryption, media upload, two events, the delivery transaction) | p50 ${f2(percentile(homeserverPhase, 50))} s, p95 ${f2(percentile(homeserverPhase, 95))} s | — |`);
  lines.push(`| | peak RSS of the Kuvert process (VmHWM) | ${memoryLine(e.memory)} | — |`);
  lines.push(`| | CPU seconds used during the scenario | ${cpuLine(e)} | — |`);
  lines.push(`| | CPU per document | ${cpuPerDocument(e.cpu, e.documents)} | — |`);
  lines.push(`| | Kuvert's homeserver requests per document (its metrics; the device's own key and to-device requests are not among them) | ${requestsLine(e.homeserverRequests, e.documents)} | — |`);
  if (e.deviceRequests) lines.push(`| | members lookups and the device's requests, as the test homeserver counted them (2 events per document) | A-encrypted: ${e.deviceRequests}; A: ${a.deviceRequests ?? "—"} | — |`);
  const warn = disturbance(e);
  if (warn) lines.push(warn);
  const rate = (r: ScenarioResult) => r.documents / r.seconds;
  const kuvertCpu = (r: ScenarioResult) => (1000 * (r.cpu.kuvert ?? NaN)) / r.documents;
  lines.push(`| Encryption's cost (same run) | documents/s, encrypted ÷ unencrypted (A-encrypted ÷ A) | **${f2(rate(e) / rate(a))}** (${f1(rate(e))} ÷ ${f1(rate(a))}) | — |`);
  lines.push(
    `| | peak RSS of Kuvert, A-encrypted · A (VmHWM, each reset at its start) | ${mib(e.memory.hwmBytes)} · ${mib(a.memory.hwmBytes)} MiB: ${f2(e.memory.hwmBytes / a.memory.hwmBytes)}× (${e.memory.hwmBytes >= a.memory.hwmBytes ? "+" : "−"}${mib(Math.abs(e.memory.hwmBytes - a.memory.hwmBytes))} MiB) | — |`,
  );
  lines.push(`| | Kuvert's CPU per document, A-encrypted · A | ${Math.round(kuvertCpu(e))} · ${Math.round(kuvertCpu(a))} ms: ${f2(kuvertCpu(e) / kuvertCpu(a))}× | — |`);
  const cpuAll = (r: ScenarioResult) => (1000 * sum(["kuvert", "synapse", "postgres", "clamd"].map((k) => r.cpu[k] ?? 0))) / r.documents;
  lines.push(`| | the stack's CPU per document (Kuvert, ${homeserver === "synapse" ? "Synapse, " : ""}PostgreSQL, clamd), A-encrypted · A | ${Math.round(cpuAll(e))} · ${Math.round(cpuAll(a))} ms: ${f2(cpuAll(e) / cpuAll(a))}× | — |`);
  return lines;
}

function report(a: ScenarioResult | undefined, b: ScenarioResult | undefined, setup: { organisations: number; seconds: number }, facts: Record<string, string>, scanConcurrency: number, homeserverLabel: string, e?: ScenarioResult, encryptionSetup?: EncryptionSetup): string {
  const date = new Date().toISOString();
  const lines: string[] = [];
  lines.push(`### Outbound documents (${variant}), ${date.slice(0, 10)}`, "");
  if (kuvertNodeOptions) lines.push(`**Experiment, not Kuvert as it is:** Kuvert ran with the Node options \`${kuvertNodeOptions}\`.`, "");
  if (encryptionSetup) {
    lines.push(
      `**With --encryption:** Kuvert ran with end-to-end encryption on (e2ee.secret, its bot's device ${encryptionSetup.device.deviceId}${encryptionSetup.device.crossSigned ? ", cross-signed" : ""}; new rooms unencrypted), ` +
        `and every organisation, in A and in A-encrypted, had one clerk with a Matrix account, a crypto device with published keys and a joined room. A's rooms are unencrypted, A-encrypted's were switched to encryption through the admin API before the scenarios (Kuvert's notice of the switch was each room's first Megolm session, shared with the clerk's device then). A-encrypted ran right after A.`,
      "",
    );
  }
  lines.push(`Machine: ${facts.cores}; ${facts.memory} memory; Node ${facts.node}; ${facts.kernel}; ${facts.clamd}.`);
  lines.push(
    `Stack: Kuvert as a child process (workers.concurrency ${scanConcurrency}), PostgreSQL, real clamd (StreamMaxLength ${clamdStreamMaxLength}, test signatures only), ` +
      (homeserver === "synapse" ? `**${homeserverLabel}**, a fresh one for this run with Kuvert's registration, as a process of its own, and this driver. ` : `the in-memory test homeserver and this driver in one process. `) +
      `CPU: ${cpuSharing}. MB = 10⁶ bytes; MiB = 2²⁰ bytes.`,
    "",
  );
  lines.push("| Scenario | Figure | Value | Target |", "| --- | --- | --- | --- |");
  if (a) {
    const label = `A: ${a.documents} mixed documents (${f1(a.bytes / MB)} MB) to ${setup.organisations} organisations, ${plan.uploadConcurrency} uploads at a time`;
    const latencies = a.finished
      .filter((f) => f.finishedAt)
      .map((f) => {
        const u = a.uploads.find((x) => x.id === f.id)!;
        return (f.finishedAt! - u.startedAt) / 1000;
      });
    const kuvertMBps = a.bytes / MB / a.seconds;
    const rawMBps = a.baseline.bytes / MB / a.baseline.seconds;
    lines.push(`| ${label} | end to end (first upload → last delivered) | ${f1(a.seconds)} s: **${f1(a.documents / a.seconds)} documents/s, ${f1(kuvertMBps)} MB/s** | — |`);
    lines.push(`| | uploads accepted (HTTP 202) | ${a.accepted}/${a.documents} (${f1((100 * a.accepted) / a.documents)} %) in ${f1(a.uploadSeconds)} s (${mbps(a.bytes, a.uploadSeconds)} MB/s) | 100 % |`);
    lines.push(
      `| | delivered | ${a.delivered}/${a.accepted} (API says: ${Object.entries(a.apiStates)
        .map(([k, v]) => `${v} ${k}`)
        .join(", ")}) | all |`,
    );
    lines.push(`| | per document, upload start → delivered | p50 ${f1(percentile(latencies, 50))} s, p95 ${f1(percentile(latencies, 95))} s, max ${f1(Math.max(...latencies))} s | — |`);
    lines.push(`| | peak RSS of the Kuvert process (VmHWM) | ${memoryLine(a.memory)} | — |`);
    lines.push(`| | clamd alone (INSTREAM, same bytes, ${a.baseline.concurrency} at a time; median of ${a.baseline.runs.length}) | ${f1(a.baseline.seconds)} s: ${f1(a.baseline.documents / a.baseline.seconds)} documents/s, ${f1(rawMBps)} MB/s | — |`);
    lines.push(`| | Kuvert end to end ÷ clamd alone | ${f2(kuvertMBps / rawMBps)} | — |`);
    lines.push(`| | CPU seconds used during the scenario | ${cpuLine(a)} | — |`);
    lines.push(`| | CPU per document | ${cpuPerDocument(a.cpu, a.documents)} | — |`);
    const uploadsDone = a.startedAt + a.uploadSeconds * 1000;
    const delivered = a.finished.filter((f) => f.finishedAt !== null);
    const afterUploads = delivered.filter((f) => f.finishedAt! > uploadsDone);
    const lastFinished = Math.max(...delivered.map((f) => f.finishedAt!));
    if (afterUploads.length > 1) {
      lines.push(
        `| | delivery once all uploads were answered (the workers alone) | ${afterUploads.length} documents in ${f1((lastFinished - uploadsDone) / 1000)} s: ${f1(afterUploads.length / ((lastFinished - uploadsDone) / 1000))} documents/s; before that ${delivered.length - afterUploads.length} in ${f1(a.uploadSeconds)} s | — |`,
      );
    }
    const [uploading, after] = a.cpuPhases;
    lines.push(`| | CPU seconds while the uploads arrived (${f1(uploading!.cpuWallSeconds)} s) · after the last was answered (${f1(after!.cpuWallSeconds)} s) | ${cpuLine(uploading!)} · ${cpuLine(after!)} | — |`);
    const homeserverPhase = delivered.filter((f) => f.scannedAt !== null).map((f) => (f.finishedAt! - f.scannedAt!) / 1000);
    lines.push(`| | per document, clean verdict → delivered (media upload, two events, the delivery transaction) | p50 ${f2(percentile(homeserverPhase, 50))} s, p95 ${f2(percentile(homeserverPhase, 95))} s | — |`);
    lines.push(`| | Kuvert's homeserver requests per document (all of them: Kuvert's metrics) | ${requestsLine(a.homeserverRequests, a.documents)} | — |`);
    if (a.inFlightLimit) lines.push(`| | documents in flight toward the homeserver (Kuvert's adaptive limit, read once a second) | ${a.inFlightLimit.min}–${a.inFlightLimit.max}, mean ${f1(a.inFlightLimit.mean)} | — |`);
    const warn = disturbance(a);
    if (warn) lines.push(warn);
    if (a.raw.length) {
      const kuvertRate = a.documents / a.seconds;
      const concurrencies = [...new Set(a.raw.map((r) => r.concurrency))].sort((x, y) => x - y);
      for (const c of concurrencies) {
        const at = rawAt(a.raw, c);
        const runs = at.runs.map((r) => `${f1(r.seconds)} s ${r.label.startsWith("before") ? "before" : "after"}`).join(" · ");
        lines.push(`| | bare client on the same homeserver, ${c} documents at a time (media upload, notice, file event) | ${runs}: **${f1(at.perSecond)} documents/s**, ${f1(at.MBps)} MB/s (mean) | — |`);
        for (const r of at.runs) {
          lines.push(`| | bare client ${c} at a time (${r.label.startsWith("before") ? "before" : "after"}): per document, upload start → file event; requests | p50 ${f2(r.latency.p50)} s, p95 ${f2(r.latency.p95)} s; ${requestsLine(r.requests, r.documents)} | — |`);
        }
        const target = c === scanConcurrency ? "≥ 0.8" : "—";
        const why = c === scanConcurrency ? "at Kuvert's concurrency toward the homeserver" : `at ${c}`;
        lines.push(`| | Kuvert end to end ÷ bare client ${why} | **${f2(kuvertRate / at.perSecond)}** | ${target} |`);
        for (const r of at.runs) lines.push(`| | CPU per document, bare client ${c} at a time (${r.label.startsWith("before") ? "before" : "after"}) | ${cpuPerDocument(r.cpu, r.documents)}; ${otherShare(r.cpu, r.seconds)} | — |`);
      }
      if (concurrencies.length > 1) {
        const low = rawAt(a.raw, concurrencies[0]!);
        const high = rawAt(a.raw, concurrencies.at(-1)!);
        lines.push(`| | the homeserver's own gain, bare client ${concurrencies.at(-1)} ÷ ${concurrencies[0]} at a time | ${f2(high.perSecond / low.perSecond)}× | — |`);
      }
    }
  }
  if (a && e && encryptionSetup) lines.push(...encryptedLines(a, e, encryptionSetup));
  if (b) {
    const d = b.finished[0];
    const u = b.uploads[0]!;
    const kuvertMBps = b.bytes / MB / b.seconds;
    const rawMBps = b.baseline.bytes / MB / b.baseline.seconds;
    const label = `B: one document of ${b.bytes >= GiB ? `${f1(b.bytes / GiB)} GiB` : `${f1(b.bytes / MiB)} MiB`}`;
    if (!u.id) lines.push(`| ${label} | upload refused | ${u.error} | accepted |`);
    lines.push(`| ${label} | end to end (upload start → delivered) | ${f1(b.seconds)} s: **${f1(kuvertMBps)} MB/s** | — |`);
    lines.push(`| | upload accepted | ${b.accepted}/1 in ${f1(b.uploadSeconds)} s (${mbps(b.bytes, b.uploadSeconds)} MB/s) | yes |`);
    if (d?.scannedAt && d.finishedAt && d.whileReceiving) {
      // The scan ran alongside the upload: it started with it and ended `scanMs` later.
      const verdictAfterAcceptance = (u.startedAt + (d.scanMs ?? NaN) - d.createdAt) / 1000;
      lines.push(
        `| | phases | upload + staging, scanned alongside ${f1((d.createdAt - u.startedAt) / 1000)} s · clamd's verdict ${f1(verdictAfterAcceptance)} s after acceptance (scan ${f1((d.scanMs ?? NaN) / 1000)} s from the first byte) · media upload + events ${f1((d.finishedAt - d.scannedAt) / 1000)} s (${mbps(b.bytes, (d.finishedAt - d.scannedAt) / 1000)} MB/s) | — |`,
      );
    } else if (d?.scannedAt && d.finishedAt) {
      const queued = (d.scannedAt - d.createdAt) / 1000 - (d.scanMs ?? 0) / 1000;
      lines.push(
        `| | phases | upload + staging ${f1((d.createdAt - u.startedAt) / 1000)} s · claim ${f1(queued)} s · clamd scan ${f1((d.scanMs ?? NaN) / 1000)} s (${mbps(b.bytes, (d.scanMs ?? NaN) / 1000)} MB/s) · media upload + events ${f1((d.finishedAt - d.scannedAt) / 1000)} s (${mbps(b.bytes, (d.finishedAt - d.scannedAt) / 1000)} MB/s) | — |`,
      );
    }
    lines.push(`| | peak RSS of the Kuvert process (VmHWM) | **${memoryLine(b.memory)}** | < 200 MB |`);
    lines.push(`| | clamd alone (INSTREAM, same bytes; median of ${b.baseline.runs.length}) | ${f1(b.baseline.seconds)} s: ${f1(rawMBps)} MB/s | — |`);
    lines.push(`| | Kuvert end to end ÷ clamd alone | **${f2(kuvertMBps / rawMBps)}** | ≥ 0.8 |`);
    lines.push(`| | CPU seconds used during the scenario | ${cpuLine(b)} | — |`);
    const warn = disturbance(b);
    if (warn) lines.push(warn);
  }
  lines.push("");
  lines.push(`Organisations: ${setup.organisations} created through the admin API, all rooms ready in ${f1(setup.seconds)} s. clamd baseline for A: ${scanConcurrency} scans at a time (Kuvert's workers.concurrency).`);
  if (encryptionSetup) {
    const x = encryptionSetup;
    lines.push(
      "",
      `Encryption setup (outside every figure): ${x.clerks} clerks made (account, password login, OlmMachine of matrix-sdk-crypto-wasm publishing its device keys and ${x.oneTimeKeys} one-time keys) in ${f1(x.clerkSeconds)} s; ${x.organisations} more organisations (bench-enc-…) ready in ${f1(x.organisationSeconds)} s; every clerk joined in ${f1(x.joinSeconds)} s; ${x.organisations} rooms switched to encryption in ${f1(x.switchSeconds)} s.`,
    );
  }
  return lines.join("\n") + "\n";
}

// ---------------------------------------------------------------------------------------

/** With --profile: the scenario's seconds within Kuvert's profile (which starts with its process), for bench/cpuprofile.ts. */
function profileWindow(env: Env, r: ScenarioResult): void {
  if (!profile) return;
  const start = processStartEpochMs(env.kuvertPid);
  const window = { from: (r.startedAt - start) / 1000, to: (r.endedAt - start) / 1000 };
  r.profileWindow = window;
  log(`  ${r.name} in Kuvert's CPU profile: node bench/cpuprofile.ts <file> --from=${window.from.toFixed(1)} --to=${window.to.toFixed(1)} (${r.documents} documents)`);
}

/** Writes the report (Markdown, one per day and variant) and the raw figures (JSON, one per run) to bench/results/. */
function writeResults(markdown: string, raw: unknown): void {
  mkdirSync(benchResultsDir, { recursive: true });
  const stamp = new Date()
    .toISOString()
    .replace(/[:]/g, "")
    .replace(/\.\d+Z$/, "Z");
  const suffix = variant === "full" ? "" : `-${variant}`;
  const file = join(benchResultsDir, `documents-${stamp.slice(0, 10)}${suffix}.md`);
  writeFileSync(file, markdown);
  writeFileSync(join(benchResultsDir, `documents-${stamp}${suffix}.json`), JSON.stringify(raw, null, 1));
  console.log("\n" + markdown);
  log(`written to ${file}`);
}

async function main(): Promise<void> {
  const facts = machineFacts();
  log(`Kuvert documents benchmark (${plan.label}) against ${homeserver === "synapse" ? `Synapse (KUVERT_TEST_SYNAPSE=${process.env.KUVERT_TEST_SYNAPSE})` : "the test homeserver"}: ${JSON.stringify(facts)}`);
  // Only the Kuvert child reads NODE_OPTIONS from here on: this process has started already.
  const nodeOptions = process.env.NODE_OPTIONS;
  const childOptions: string[] = nodeOptions ? [nodeOptions] : [];
  if (profile) {
    const dir = join(benchResultsDir, "profiles");
    mkdirSync(dir, { recursive: true });
    childOptions.push(`--cpu-prof --cpu-prof-dir=${dir}`);
    log(`Kuvert writes a CPU profile to ${dir} when it stops`);
  }
  if (memoryProbe) {
    const probeFile = join(benchResultsDir, `memory-probe-${new Date().toISOString().replace(/[:.]/g, "")}.jsonl`);
    mkdirSync(benchResultsDir, { recursive: true });
    process.env.KUVERT_BENCH_MEMORY_PROBE = probeFile;
    childOptions.push(`--import=${join(import.meta.dirname, "memory-probe.ts")}`);
    log(`Kuvert writes its memory figures to ${probeFile}`);
  }
  if (kuvertNodeOptions) {
    childOptions.push(kuvertNodeOptions);
    log(`experiment: Kuvert runs with the Node options ${kuvertNodeOptions}`);
  }
  if (childOptions.length) process.env.NODE_OPTIONS = childOptions.join(" ");
  log(`starting PostgreSQL, clamd, SMTP, ${homeserver === "synapse" ? "a fresh Synapse" : "the test homeserver"} and Kuvert`);
  const bench = await startBenchStack({
    name: `bench-documents-${variant}`,
    clamdStreamMaxLength,
    homeserverMaxUploadBytes: Math.round(1.2 * GiB),
    homeserver,
    encryption,
    configure: (raw) => {
      // One driver on 127.0.0.1 makes thousands of requests a minute: the per-address rate
      // limit (default 1,200/min) is for the internet, not for the back office being measured.
      (raw.publicApi as Record<string, unknown>).rateLimitPerMinute = 1_000_000;
      (raw.documents as Record<string, unknown>).maxBytes = kuvertLimitBytes;
      Object.assign(raw.scanning as Record<string, unknown>, { maxStreamBytes: kuvertLimitBytes, timeoutSeconds: 600 });
    },
  });
  if (nodeOptions === undefined) delete process.env.NODE_OPTIONS;
  else process.env.NODE_OPTIONS = nodeOptions;
  let db: Database | undefined;
  let a: ScenarioResult | undefined;
  let b: ScenarioResult | undefined;
  let e: ScenarioResult | undefined;
  let encryptionSetup: EncryptionSetup | undefined;
  let groups: CpuGroups | undefined;
  try {
    const { stack } = bench;
    const kuvertPid = stack.child?.pid;
    if (!kuvertPid) throw new Error("Kuvert did not start as a child process");
    db = await openDatabase({ url: stack.config.database.url, embeddedDir: "", poolSize: 2 });
    const env: Env = {
      bench,
      db,
      dropToken: await createToken(db, "bench-drop", ["drop"], "bench"),
      kuvertPid,
      clampid: clamdPid(bench.clamd),
      scanner: new ClamdScanner(stack.config.scanning),
      scanConcurrency: stack.config.workers.concurrency,
      rooms: new Map(),
    };
    log(`homeserver: ${bench.homeserverLabel} at ${bench.access.url}${bench.synapsePid ? ` (pid ${bench.synapsePid})` : ""}`);
    log(`Kuvert pid ${kuvertPid}, clamd pid ${env.clampid ?? "?"}; creating ${plan.organisations} organisations`);
    // Each service in a CPU group of its own, as each container is in the deployment (bench/cpugroups.ts);
    // not with --processes, whose further Kuvert processes start and stop during the run.
    if (!sharedCpu && !processCounts) {
      groups = cpuGroups(variant);
      for (const [name, pids] of Object.entries<(number | undefined)[]>({ kuvert: [kuvertPid], synapse: [bench.synapsePid], clamd: [env.clampid], postgres: postgresPids(bench.cluster), driver: [process.pid] })) {
        groups.put(
          name,
          pids.filter((pid): pid is number => pid !== undefined),
        );
      }
      log(`CPU groups: ${groups.how}`);
    }
    cpuSharing = !groups?.active
      ? `every process in one CPU group (${sharedCpu ? "--shared-cpu" : processCounts ? "--processes" : groups?.how})`
      : `each service in a CPU group of its own with equal weight (${groups.how}; Kuvert, Synapse, clamd, PostgreSQL, this driver), as each container is in a deployment`;
    // With --encryption every organisation, encrypted or not, gets a clerk with a crypto device
    // who joins its room: the two sets differ in encryption only.
    const encryptedIds = organisationIds(plan.organisations, "bench-enc-");
    const made = encryption ? await clerksFor(bench.access, [...organisationIds(plan.organisations), ...encryptedIds]) : undefined;
    const clerks = made?.clerks;
    const matrixIds = made?.matrixIds;
    const clerkSeconds = made?.seconds ?? 0;
    const orgs = await createOrganisations(env, plan.organisations, { matrixIds });
    log(`  ${orgs.ids.length} rooms ready in ${f1(orgs.seconds)} s`);
    if (encryption && clerks && matrixIds) {
      log(`creating ${encryptedIds.length} organisations to be encrypted (bench-enc-…)`);
      const encOrgs = await createOrganisations(env, plan.organisations, { prefix: "bench-enc-", matrixIds });
      log(`  ${encOrgs.ids.length} rooms ready in ${f1(encOrgs.seconds)} s; the clerks join`);
      let t = performance.now();
      await joinRooms(bench.access, clerks, env.rooms);
      const joinSeconds = (performance.now() - t) / 1000;
      const device = await waitForBotDevice(bench);
      log(`  joined in ${f1(joinSeconds)} s; the bot's device ${device.deviceId} is ready (ed25519 ${device.ed25519}, cross-signed: ${device.crossSigned}); switching ${encOrgs.ids.length} rooms to encryption`);
      t = performance.now();
      await switchToEncryption(bench, encOrgs.ids);
      const switchSeconds = (performance.now() - t) / 1000;
      // What the homeserver says, through the clerks: A's rooms clear, A-encrypted's encrypted.
      await pool([...orgs.ids, ...encOrgs.ids], 8, async (id) => {
        const algorithm = await roomAlgorithm(bench.access, clerks!.get(id)!.accessToken, env.rooms.get(id)!);
        const wanted = id.startsWith("bench-enc-") ? "m.megolm.v1.aes-sha2" : null;
        if (algorithm !== wanted) throw new Error(`${id}'s room has m.room.encryption ${algorithm}, not ${wanted}`);
      });
      log(`  switched in ${f1(switchSeconds)} s`);
      encryptionSetup = {
        clerks: clerks.size,
        clerkSeconds,
        organisations: encOrgs.ids.length,
        organisationSeconds: encOrgs.seconds,
        joinSeconds,
        switchSeconds,
        oneTimeKeys: Math.min(...[...clerks.values()].map((c) => c.oneTimeKeys)),
        device,
      };
    }

    // Warm-up, outside every figure: one 100 MiB scan straight to clamd, one small document through Kuvert.
    await env.scanner.scan(documentStream("warm-up-clamd", 100 * MiB), 100 * MiB);
    const warm: PlannedDocument = { index: -1, name: "warm-up", size: 64 * 1024, organisation: orgs.ids[0]!, bucket: "small" };
    const w = await drop(env, warm);
    if (!w.id) throw new Error(`the warm-up document was refused: ${w.error}`);
    await settle(env, [w.id]);
    if (encryption) {
      const warmEncrypted = await drop(env, { ...warm, name: "warm-up-encrypted", organisation: encryptedIds[0]! });
      if (!warmEncrypted.id) throw new Error(`the encrypted warm-up document was refused: ${warmEncrypted.error}`);
      await settle(env, [warmEncrypted.id]);
    }

    if (processCounts) {
      const docs = mixedSet(plan.documents, orgs.ids);
      log(`bare client on ${bench.homeserverLabel}, 8 documents at a time: the homeserver's ceiling`);
      const bare = await rawBaseline(env, docs, 8, "before-8", await hasAsyncUpload(env));
      log(`  ${f1(bare.documents / bare.seconds)} documents/s`);
      const steps = await scaleOut(
        env,
        docs,
        [...new Set(processCounts)].sort((x, y) => x - y),
        plan.uploadConcurrency,
      );
      const markdown =
        [`# Documents through several Kuvert processes (${plan.label}), ${new Date().toISOString().slice(0, 10)}`, "", `Homeserver: ${bench.homeserverLabel}. Machine: ${JSON.stringify(facts)}`, ...scaleReport(steps, bare.documents / bare.seconds)].join("\n") + "\n";
      writeResults(markdown, { plan, facts, homeserver: bench.homeserverLabel, bare: { ...bare, uploads: undefined }, steps });
      return;
    }
    if (only !== "b") {
      const docs = mixedSet(plan.documents, orgs.ids);
      log(`scenario A: ${docs.length} documents, ${f1(sum(docs.map((d) => d.size)) / MB)} MB; clamd baseline first`);
      const baseline = await clamdBaseline(env, docs, env.scanConcurrency, 3);
      log(`  clamd alone: ${f1(baseline.seconds)} s (runs ${baseline.runs.map(f1).join(", ")} s), ${mbps(baseline.bytes, baseline.seconds)} MB/s (${baseline.clean} clean)`);
      // The bare client at Kuvert's concurrency toward the homeserver and at 8, before Kuvert and
      // after it in the reverse order, so that drift (rooms growing, the machine's load) evens out.
      const asyncUpload = await hasAsyncUpload(env);
      const concurrencies = [...new Set([env.scanConcurrency, 8])];
      const raw: RawRun[] = [];
      const bare = async (when: "before" | "after", c: number) => {
        log(`bare client on ${bench.homeserverLabel}, ${c} documents at a time (${when} Kuvert; ${asyncUpload ? "create + PUT" : "POST"} uploads)`);
        const r = await rawBaseline(env, docs, c, `${when}-${c}`, asyncUpload);
        log(`  ${f1(r.seconds)} s: ${f1(r.documents / r.seconds)} documents/s, ${mbps(r.bytes, r.seconds)} MB/s; CPU per document ${cpuPerDocument(r.cpu, r.documents)}; ${otherShare(r.cpu, r.seconds)}`);
        raw.push(r);
      };
      for (const c of concurrencies) await bare("before", c);
      log("Kuvert, the same documents through the drop API");
      const encryptedBefore = encryption ? await encryptedEventsTotal(bench.metricsUrl) : NaN;
      const requestsBefore = encryption ? deviceRequestCounts(bench) : undefined;
      a = await runScenario(env, "A", docs, plan.uploadConcurrency, baseline);
      if (encryption) {
        a.encrypted = await encryptedSince(env, encryptedBefore, a.startedAt);
        a.deviceRequests = deviceRequestsLine(requestsBefore, deviceRequestCounts(bench), 2 * a.documents);
      }
      profileWindow(env, a);
      log(`  A: ${a.delivered}/${a.documents} delivered in ${f1(a.seconds)} s: ${f1(a.documents / a.seconds)} documents/s, ${mbps(a.bytes, a.seconds)} MB/s; Kuvert peak RSS ${mib(a.memory.hwmBytes)} MiB; CPU per document ${cpuPerDocument(a.cpu, a.documents)}`);
      if (encryption) {
        // Right after A, before the bare client's second runs: the two differ in encryption only.
        const encryptedDocs = mixedSet(plan.documents, encryptedIds);
        log(`scenario A-encrypted: the same ${encryptedDocs.length} documents into the ${encryptedIds.length} encrypted rooms`);
        const before = await encryptedEventsTotal(bench.metricsUrl);
        const requestsBeforeEncrypted = deviceRequestCounts(bench);
        e = await runScenario(env, "A-encrypted", encryptedDocs, plan.uploadConcurrency, baseline);
        e.encrypted = await encryptedSince(env, before, e.startedAt);
        e.deviceRequests = deviceRequestsLine(requestsBeforeEncrypted, deviceRequestCounts(bench), 2 * e.documents);
        profileWindow(env, e);
        log(
          `  A-encrypted: ${e.delivered}/${e.documents} delivered in ${f1(e.seconds)} s: ${f1(e.documents / e.seconds)} documents/s (${f2(e.documents / e.seconds / (a.documents / a.seconds))} of A); Kuvert peak RSS ${mib(e.memory.hwmBytes)} MiB (A ${mib(a.memory.hwmBytes)}); CPU per document ${cpuPerDocument(e.cpu, e.documents)}; ${e.encrypted.events} events encrypted (A: ${a.encrypted?.events})`,
        );
      }
      for (const c of [...concurrencies].reverse()) await bare("after", c);
      a.raw = raw;
      const atKuvert = rawAt(raw, env.scanConcurrency);
      log(`  Kuvert ÷ bare client at ${env.scanConcurrency}: ${f2(a.documents / a.seconds / atKuvert.perSecond)}`);
    }
    if (only !== "a") {
      const big: PlannedDocument = { index: 0, name: `big-${plan.bigBytes}`, size: plan.bigBytes, organisation: orgs.ids[0]!, bucket: "large" };
      log(`scenario B: one document of ${mib(big.size)} MiB; clamd baseline first`);
      try {
        const baseline = await clamdBaseline(env, [big], 1, 3);
        log(`  clamd alone: ${f1(baseline.seconds)} s (runs ${baseline.runs.map(f1).join(", ")} s), ${mbps(baseline.bytes, baseline.seconds)} MB/s`);
        b = await runScenario(env, "B", [big], 1, baseline);
        profileWindow(env, b);
        log(`  B: delivered in ${f1(b.seconds)} s: ${mbps(b.bytes, b.seconds)} MB/s; Kuvert peak RSS ${mib(b.memory.hwmBytes)} MiB`);
      } catch (err) {
        // A's figures are still written.
        if (!a) throw err;
        log(`  B failed, A's figures are still reported: ${(err as Error).message}`);
      }
    }

    const markdown = report(a, b, { organisations: orgs.ids.length, seconds: orgs.seconds }, facts, env.scanConcurrency, bench.homeserverLabel, e, encryptionSetup);
    writeResults(markdown, { plan, facts, homeserver: bench.homeserverLabel, a: a && { ...a, uploads: undefined, memory: { ...a.memory } }, b, ...(e ? { encrypted: { ...e, uploads: undefined }, encryptionSetup } : {}) });
  } finally {
    groups?.release();
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
