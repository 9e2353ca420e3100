// A Kuvert stack for the benchmarks, put together from the test suite's pieces
// (test/support/*, @kuvert/test-homeserver) without changing them. It differs from
// test/support/harness.ts's startStack in what a benchmark needs and startStack cannot set:
//   - clamd's StreamMaxLength (startStack starts clamd with its 100M default), and clamd's
//     clean-file cache off (see below),
//   - the homeserver's max_upload_size (startStack keeps its 50 MiB default),
//   - Kuvert's own worker defaults instead of the test suite's short leases and fast polling,
//   - Kuvert always runs as a child process, so that its memory and CPU are its own.
// The homeserver is either the in-memory test homeserver (it keeps every uploaded file in
// memory, in the benchmark's process, which is why Kuvert must run in a process of its own) or
// a fresh real Synapse (test/support/synapse.ts), a process of its own too.
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { appendFileSync, copyFileSync, createWriteStream, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { stringify } from "yaml";
import { parseConfig } from "../appservice/config/load.ts";
import { openDatabase } from "../appservice/db/database.ts";
import { migrate } from "../appservice/db/migrate.ts";
import { buildRegistration } from "../appservice/matrix/registration.ts";
import { createToken } from "../appservice/tokens/tokens.ts";
import { TestHomeserver } from "@kuvert/test-homeserver";
import { startClamd, type Clamd } from "../test/support/clamd.ts";
import { freshDatabaseUrl } from "../test/support/database.ts";
import { E2EE_FEATURES, repoRoot, Stack, waitFor } from "../test/support/harness.ts";
import { TestUser, type HomeserverAccess } from "../test/support/matrix.ts";
import { freePort } from "../test/support/ports.ts";
import { startPostgres, type PostgresCluster } from "../test/support/postgres.ts";
import { startSmtp, type SmtpServer } from "../test/support/smtp.ts";
import { startSynapse, synapsePython, type Synapse } from "../test/support/synapse.ts";
import { cpuSecondsOf } from "./measure.ts";

/**
 * Where a benchmark run keeps its files (staging, config, Kuvert's log): bench/results/ (ignored
 * by git), not test-artifacts/, which `npm test` wipes when it starts — under a running benchmark.
 */
export const benchResultsDir = join(repoRoot, "bench", "results");

export type HomeserverKind = "test" | "synapse";

/** Where setup.sh of the shared Synapse kit installs it when not told otherwise. */
const defaultSynapseHome = join(homedir(), ".cache", "synapse-1.67.0");

/**
 * Which homeserver a benchmark runs against: `--homeserver=synapse|test` among `argv`, else
 * Synapse when KUVERT_TEST_SYNAPSE names one, else the test homeserver. `--homeserver=synapse`
 * without KUVERT_TEST_SYNAPSE takes the shared kit's default place (~/.cache/synapse-1.67.0).
 * Answers the kind and the arguments left over.
 */
export function homeserverChoice(argv: string[]): { kind: HomeserverKind; rest: string[] } {
  const flag = argv.find((a) => a.startsWith("--homeserver="))?.slice("--homeserver=".length);
  const rest = argv.filter((a) => !a.startsWith("--homeserver="));
  if (flag !== undefined && flag !== "synapse" && flag !== "test") throw new Error(`--homeserver=${flag}: use --homeserver=synapse or --homeserver=test`);
  if (flag === "synapse" && !process.env.KUVERT_TEST_SYNAPSE) {
    if (!existsSync(join(defaultSynapseHome, "venv", "bin", "python"))) {
      throw new Error(`--homeserver=synapse: set KUVERT_TEST_SYNAPSE to a Synapse installation (none at ${defaultSynapseHome}; see ../shared/synapse/README.md)`);
    }
    process.env.KUVERT_TEST_SYNAPSE = defaultSynapseHome;
  }
  const kind: HomeserverKind = flag ?? (synapsePython() ? "synapse" : "test");
  return { kind, rest };
}

/** `homeserverChoice` of this process's arguments; a wrong flag ends the benchmark with the sentence. */
export function homeserverChoiceOrExit(): { kind: HomeserverKind; rest: string[] } {
  try {
    return homeserverChoice(process.argv.slice(2));
  } catch (err) {
    console.error((err as Error).message);
    process.exit(2);
  }
}

export interface BenchStackOptions {
  name: string;
  /** clamd's StreamMaxLength and MaxFileSize in MiB, e.g. "1200M" (MaxScanSize: three times that). */
  clamdStreamMaxLength: string;
  /** The homeserver's max_upload_size in bytes. */
  homeserverMaxUploadBytes: number;
  /** The test homeserver (default) or a fresh Synapse (KUVERT_TEST_SYNAPSE). */
  homeserver?: HomeserverKind;
  /** Changes to Kuvert's configuration, after the defaults below. */
  configure?: (config: Record<string, unknown>) => void;
  /**
   * End-to-end encryption available, as test/support/harness.ts's `encryption` sets it up: a
   * secret for the bot's device (e2ee.secret, so the registration asks for what the device needs)
   * and a homeserver that gives it (Synapse's experimental_features, the test homeserver's
   * experimentalFeatures: E2EE_FEATURES, and on Synapse device masquerading). Unlike the tests,
   * organisations.encryption stays off: new rooms are unencrypted, and a benchmark switches the
   * rooms it wants encrypted through the admin API.
   */
  encryption?: boolean;
}

export interface BenchStack {
  stack: Stack;
  /** The test homeserver, when the benchmark runs against it. */
  hs: TestHomeserver | undefined;
  /** The Synapse, when the benchmark runs against one. */
  synapse: Synapse | undefined;
  /** Which homeserver, for the report: "test homeserver" or "Synapse 1.67.0 (SQLite)". */
  homeserverLabel: string;
  /** The homeserver's client-server URL and an admin's token. */
  access: HomeserverAccess;
  /** The PID of the Synapse process (undefined with the test homeserver, which runs in this process). */
  synapsePid: number | undefined;
  /** Kuvert's Prometheus metrics (homeserver request durations, for the reports). */
  metricsUrl: string;
  clamd: Clamd;
  /** The PostgreSQL cluster when this benchmark started one (undefined: KUVERT_TEST_DATABASE_URL). */
  cluster: PostgresCluster | undefined;
  /** Stops everything, in order; safe to call once. */
  stop(): Promise<void>;
}

/** A PostgreSQL cluster for the benchmark: KUVERT_TEST_DATABASE_URL, or one started here. */
export async function ensurePostgres(): Promise<PostgresCluster | undefined> {
  if (process.env.KUVERT_TEST_DATABASE_URL) return undefined;
  const cluster = await startPostgres();
  process.env.KUVERT_TEST_DATABASE_URL = cluster.url;
  return cluster;
}

export async function startBenchStack(opts: BenchStackOptions): Promise<BenchStack> {
  const workDir = join(benchResultsDir, "work", `${opts.name}-${randomBytes(3).toString("hex")}`);
  mkdirSync(workDir, { recursive: true });
  const cluster = await ensurePostgres();
  const started: { stop(): Promise<void> | void }[] = [];
  const unwind = async () => {
    for (const s of started.reverse()) await Promise.resolve(s.stop()).catch(() => undefined);
  };
  try {
    const databaseUrl = await freshDatabaseUrl("postgres");
    // MaxScanSize three times the stream limit: it counts what clamd finds embedded in a file
    // too, and with the deployment's AlertExceedsMax a 1 GiB document of random bytes otherwise
    // comes back as Heuristics.Limits.Exceeded.MaxScanSize instead of being scanned.
    const clamd = await startClamd({ streamMaxLength: opts.clamdStreamMaxLength, settings: { MaxScanSize: `${3 * Number(opts.clamdStreamMaxLength.replace(/M$/, ""))}M` } });
    started.push(clamd);
    // clamd remembers the hashes of files it found clean and answers a repeat from that cache:
    // the benchmark scans the same bytes twice (clamd alone, then through Kuvert), so the cache
    // would flatter the second. Restarted with the cache off, every scan is a real one.
    await clamd.pause();
    appendFileSync(join(clamd.dir, "clamd.conf"), "DisableCache yes\n");
    await clamd.resume();
    const smtp: SmtpServer = await startSmtp();
    started.push(smtp);

    const kind = opts.homeserver ?? "test";
    // Synapse's server name is "localhost" (test/support/synapse.ts); the registration names it.
    const serverName = kind === "synapse" ? "localhost" : "kuvert.test";
    const asPort = await freePort();
    const registrationFile = join(workDir, "registration.yaml");
    const raw: Record<string, unknown> = {
      homeserver: { url: "http://127.0.0.1:1", domain: serverName },
      appservice: { url: `http://127.0.0.1:${asPort}`, registrationFile, listener: { bindAddress: "127.0.0.1", port: asPort } },
      publicApi: { listener: { bindAddress: "127.0.0.1", port: await freePort() } },
      // A port of its own: another Kuvert (another benchmark, a test) may hold the default 9464.
      metrics: { listener: { bindAddress: "127.0.0.1", port: await freePort() } },
      database: { url: databaseUrl },
      // Kuvert's own defaults for workers (concurrency 4, lease 60 s, poll 1 s): not the test suite's.
      workers: {},
      logging: { level: "info", pseudonymKey: "bench-pseudonym-key" },
      documents: { stagingDir: join(workDir, "staging") },
      scanning: { host: clamd.host, port: clamd.port },
      mail: { smtp: { host: smtp.host, port: smtp.port }, from: "Kuvert <kuvert@body.example>", staffMailbox: "staff@body.example" },
    };
    // Before the registration is made: with a secret it asks for to-device messages, key counts and device lists.
    if (opts.encryption) raw.e2ee = { secret: `bench-e2ee-secret-${randomBytes(24).toString("hex")}` };
    const registration = buildRegistration(parseConfig(raw));
    writeFileSync(registrationFile, stringify(registration));
    let hs: TestHomeserver | undefined;
    let synapse: Synapse | undefined;
    let access: HomeserverAccess;
    let homeserverLabel: string;
    if (kind === "synapse") {
      // Its log outlives the work directory (which goes with the stack), next to the results.
      mkdirSync(join(benchResultsDir, "logs"), { recursive: true });
      synapse = await startSynapse({
        dir: join(workDir, "synapse"),
        registrations: [registration],
        extra: {
          max_upload_size: `${Math.ceil(opts.homeserverMaxUploadBytes / 1024 / 1024)}M`,
          // bcrypt_rounds 4 (Synapse's default 12 takes about half a second a hash): the encrypted
          // benchmarks make a clerk account with a password login per organisation, outside every figure.
          ...(opts.encryption ? { experimental_features: { ...E2EE_FEATURES, msc3202_device_masquerading: true }, bcrypt_rounds: 4 } : {}),
        },
        logFile: join(benchResultsDir, "logs", `${opts.name}.synapse.log`),
      });
      started.push(synapse);
      access = { url: synapse.url, serverName: synapse.serverName, adminToken: synapse.adminToken };
      homeserverLabel = `Synapse ${synapse.version} (SQLite)`;
    } else {
      const adminToken = `admin-${randomBytes(16).toString("hex")}`;
      hs = new TestHomeserver({ serverName, registrations: [registration], adminToken, asRetryBaseMs: 100, maxUploadBytes: opts.homeserverMaxUploadBytes, ...(opts.encryption ? { experimentalFeatures: E2EE_FEATURES } : {}) });
      await hs.start();
      started.push(hs);
      access = { url: hs.url, serverName, adminToken };
      homeserverLabel = "test homeserver";
    }
    (raw.homeserver as Record<string, unknown>).url = access.url;
    (raw.homeserver as Record<string, unknown>).adminToken = access.adminToken;
    const staff = await TestUser.create(access, "staff", "Staff Member");
    raw.staff = [{ userId: staff.userId, roles: ["admin"] }];
    opts.configure?.(raw);
    const config = parseConfig(raw);
    const stack = new Stack({ name: opts.name, hs, synapse, access, registration, config, rawConfig: raw, workDir, clamd, smtp });
    stack.staff = staff;
    const db = await openDatabase({ url: databaseUrl, embeddedDir: "", poolSize: 2 });
    try {
      await migrate(db);
      stack.adminToken = await createToken(db, "bench-admin", ["admin"], "bench");
    } finally {
      await db.close();
    }
    started.length = 0; // from here on, stack.stop() stops the homeserver, clamd and SMTP server
    try {
      await startKuvertChild(stack, join(workDir, "kuvert.log"));
    } catch (err) {
      await stack.stop().catch(() => undefined);
      throw err;
    }
    let stopped = false;
    return {
      stack,
      hs,
      synapse,
      homeserverLabel,
      access,
      synapsePid: synapse ? pidByCommandLine(join(synapse.dir, "homeserver.yaml")) : undefined,
      metricsUrl: `http://127.0.0.1:${config.metrics.listener.port}/metrics`,
      clamd,
      cluster,
      async stop() {
        if (stopped) return;
        stopped = true;
        // Kuvert's logs outlive the work directory (which goes with the stack), next to Synapse's.
        await stack.stopKuvert().catch(() => undefined);
        await new Promise((resolve) => setTimeout(resolve, 200)); // the pipes' last lines
        keepKuvertLogs(workDir, opts.name);
        await stack.stop();
      },
    };
  } catch (err) {
    await unwind();
    cluster?.stop();
    if (cluster) delete process.env.KUVERT_TEST_DATABASE_URL;
    throw err;
  }
}

/**
 * Starts Kuvert as a child process, as Stack.startKuvert(true) does, but with its log in the
 * benchmark's work directory. stack.stop() stops it (SIGTERM, waited for).
 */
export async function startKuvertChild(stack: Stack, logPath: string): Promise<void> {
  const configFile = join(stack.workDir, "config.yaml");
  writeFileSync(configFile, stringify(stack.rawConfig));
  stack.child = await spawnKuvert(configFile, stack.publicUrl, logPath);
}

/** Starts `bin/kuvert.js start` with a configuration file and waits until its public listener answers /healthz. */
async function spawnKuvert(configFile: string, publicUrl: string, logPath: string): Promise<ChildProcess> {
  const log = createWriteStream(logPath, { flags: "a" });
  // With the glibc allocator settings of the Docker image (Dockerfile), so that memory is measured as deployed.
  const child = spawn(process.execPath, [join(repoRoot, "bin", "kuvert.js"), "--config", configFile, "start"], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { MALLOC_ARENA_MAX: "2", MALLOC_MMAP_THRESHOLD_: "131072", ...process.env },
  });
  child.stdout.pipe(log);
  child.stderr.pipe(log);
  await waitFor(
    "Kuvert to answer /healthz",
    async () => {
      if (child.exitCode !== null) throw new Error(`Kuvert exited with ${child.exitCode}; see ${logPath}`);
      const res = await fetch(`${publicUrl}/healthz`).catch(() => undefined);
      return res?.ok === true;
    },
    60_000,
  );
  return child;
}

/**
 * Copies Kuvert's logs of a run (kuvert.log, and kuvert-*.log of restarts or further processes)
 * to bench/results/logs/<name>.<file>, replacing those of an earlier run of the same name.
 */
function keepKuvertLogs(workDir: string, name: string): void {
  const logs = join(benchResultsDir, "logs");
  mkdirSync(logs, { recursive: true });
  for (const file of readdirSync(workDir)) {
    if (/^kuvert.*\.log$/.test(file)) copyFileSync(join(workDir, file), join(logs, `${name}.${file}`));
  }
}

/** The PID of the clamd started for `clamd` (found by its configuration file), or undefined. */
export function clamdPid(clamd: Clamd): number | undefined {
  return pidByCommandLine(`--config-file=${join(clamd.dir, "clamd.conf")}`);
}

/** The PID of the process whose command line contains `fragment` (a path only it has), or undefined. */
function pidByCommandLine(fragment: string): number | undefined {
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, "latin1");
      if (cmdline.includes(fragment)) return Number(entry);
    } catch {
      // gone meanwhile
    }
  }
  return undefined;
}

/**
 * CPU seconds a PostgreSQL cluster started by this benchmark used so far: the postmaster with its
 * children that ended (backends come and go), and the children alive now.
 */
export function postgresCpuSeconds(cluster: PostgresCluster | undefined): number {
  const [postmaster, ...children] = postgresPids(cluster);
  return postmaster === undefined ? 0 : cpuSecondsOf(postmaster, true) + children.reduce((total, pid) => total + cpuSecondsOf(pid), 0);
}

/** The PIDs of a PostgreSQL cluster started by this benchmark: the postmaster and its children. */
export function postgresPids(cluster: PostgresCluster | undefined): number[] {
  if (!cluster) return [];
  const pidFile = join(cluster.dir, "data", "postmaster.pid");
  if (!existsSync(pidFile)) return [];
  const postmaster = Number(readFileSync(pidFile, "utf8").split("\n")[0]);
  const pids = [postmaster];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "latin1");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === postmaster) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}
