// A Kuvert stack for the benchmarks, put together from the test suite's pieces
// (test/support/*, test/homeserver) without changing them. It differs from
// test/support/harness.ts's startStack in what a benchmark needs and startStack cannot set:
//   - clamd's StreamMaxLength (startStack starts clamd with its 100M default), and clamd's
//     clean-file cache off (see below),
//   - the test homeserver's max_upload_size (startStack keeps its 50 MiB default),
//   - Kuvert's own worker defaults instead of the test suite's short leases and fast polling,
//   - Kuvert always runs as a child process, so that its memory and CPU are its own.
// Only the in-memory test homeserver is used: it keeps every uploaded file in memory, in
// the benchmark's process, which is why Kuvert must run in a process of its own.
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { appendFileSync, createWriteStream, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { stringify } from "yaml";
import { parseConfig } from "../appservice/config/load.ts";
import { openDatabase } from "../appservice/db/database.ts";
import { migrate } from "../appservice/db/migrate.ts";
import { buildRegistration } from "../appservice/matrix/registration.ts";
import { createToken } from "../appservice/tokens/tokens.ts";
import { TestHomeserver } from "../test/homeserver/index.ts";
import { startClamd, type Clamd } from "../test/support/clamd.ts";
import { freshDatabaseUrl } from "../test/support/database.ts";
import { repoRoot, Stack, waitFor } from "../test/support/harness.ts";
import { TestUser } from "../test/support/matrix.ts";
import { freePort } from "../test/support/ports.ts";
import { startPostgres, type PostgresCluster } from "../test/support/postgres.ts";
import { startSmtp, type SmtpServer } from "../test/support/smtp.ts";

/**
 * Where a benchmark run keeps its files (staging, config, Kuvert's log): bench/results/ (ignored
 * by git), not test-artifacts/, which `npm test` wipes when it starts — under a running benchmark.
 */
export const benchResultsDir = join(repoRoot, "bench", "results");

export interface BenchStackOptions {
  name: string;
  /** clamd's StreamMaxLength (and MaxFileSize, MaxScanSize), e.g. "1200M". */
  clamdStreamMaxLength: string;
  /** The test homeserver's max_upload_size in bytes. */
  homeserverMaxUploadBytes: number;
  /** Changes to Kuvert's configuration, after the defaults below. */
  configure?: (config: Record<string, unknown>) => void;
}

export interface BenchStack {
  stack: Stack;
  hs: TestHomeserver;
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
    const clamd = await startClamd({ streamMaxLength: opts.clamdStreamMaxLength });
    started.push(clamd);
    // clamd remembers the hashes of files it found clean and answers a repeat from that cache:
    // the benchmark scans the same bytes twice (clamd alone, then through Kuvert), so the cache
    // would flatter the second. Restarted with the cache off, every scan is a real one.
    await clamd.pause();
    appendFileSync(join(clamd.dir, "clamd.conf"), "DisableCache yes\n");
    await clamd.resume();
    const smtp: SmtpServer = await startSmtp();
    started.push(smtp);

    const serverName = "kuvert.test";
    const asPort = await freePort();
    const adminToken = `admin-${randomBytes(16).toString("hex")}`;
    const registrationFile = join(workDir, "registration.yaml");
    const raw: Record<string, unknown> = {
      homeserver: { url: "http://127.0.0.1:1", domain: serverName },
      appservice: { url: `http://127.0.0.1:${asPort}`, registrationFile, listener: { bindAddress: "127.0.0.1", port: asPort } },
      publicApi: { listener: { bindAddress: "127.0.0.1", port: await freePort() } },
      database: { url: databaseUrl },
      // Kuvert's own defaults for workers (concurrency 4, lease 60 s, poll 1 s): not the test suite's.
      workers: {},
      logging: { level: "info", pseudonymKey: "bench-pseudonym-key" },
      documents: { stagingDir: join(workDir, "staging") },
      scanning: { host: clamd.host, port: clamd.port },
      mail: { smtp: { host: smtp.host, port: smtp.port }, from: "Kuvert <kuvert@body.example>", staffMailbox: "staff@body.example" },
    };
    const registration = buildRegistration(parseConfig(raw));
    writeFileSync(registrationFile, stringify(registration));
    const hs = new TestHomeserver({ serverName, registrations: [registration], adminToken, asRetryBaseMs: 100, maxUploadBytes: opts.homeserverMaxUploadBytes });
    await hs.start();
    started.push(hs);
    (raw.homeserver as Record<string, unknown>).url = hs.url;
    (raw.homeserver as Record<string, unknown>).adminToken = adminToken;
    const access = { url: hs.url, serverName, adminToken };
    const staff = await TestUser.create(access, "staff", "Staff Member");
    raw.staff = [{ userId: staff.userId, roles: ["admin"] }];
    opts.configure?.(raw);
    const config = parseConfig(raw);
    const stack = new Stack({ name: opts.name, hs, access, registration, config, rawConfig: raw, workDir, clamd, smtp });
    stack.staff = staff;
    const db = await openDatabase({ url: databaseUrl, embeddedDir: "", poolSize: 2 });
    try {
      await migrate(db);
      stack.adminToken = await createToken(db, "bench-admin", ["admin"], "bench");
    } finally {
      await db.close();
    }
    started.length = 0; // from here on, stack.stop() stops homeserver, clamd and SMTP server
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
      clamd,
      cluster,
      async stop() {
        if (stopped) return;
        stopped = true;
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
  const log = createWriteStream(logPath, { flags: "a" });
  const child = spawn(process.execPath, [join(repoRoot, "bin", "kuvert.js"), "--config", configFile, "start"], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env } });
  child.stdout.pipe(log);
  child.stderr.pipe(log);
  stack.child = child;
  await waitFor(
    "Kuvert to answer /healthz",
    async () => {
      if (child.exitCode !== null) throw new Error(`Kuvert exited with ${child.exitCode}; see ${logPath}`);
      const res = await fetch(`${stack.publicUrl}/healthz`).catch(() => undefined);
      return res?.ok === true;
    },
    60_000,
  );
}

/** The PID of the clamd started for `clamd` (found by its configuration file), or undefined. */
export function clamdPid(clamd: Clamd): number | undefined {
  const conf = join(clamd.dir, "clamd.conf");
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, "latin1");
      if (cmdline.includes(`--config-file=${conf}`)) return Number(entry);
    } catch {
      // gone meanwhile
    }
  }
  return undefined;
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
