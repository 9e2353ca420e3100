// A whole Kuvert for one suite: its own database, a homeserver (the test homeserver, or a
// real one named by environment variables), Kuvert itself, an admin token, a staff user.
//
// Real homeserver (see README, "Tests against a real homeserver"):
//   KUVERT_TEST_SYNAPSE            a Synapse installation: each suite starts a fresh Synapse from it
//                                  (test/support/synapse.ts)
// or one that is already running:
//   KUVERT_TEST_HOMESERVER_URL     client-server URL of the homeserver
//   KUVERT_TEST_HOMESERVER_NAME    its server name
//   KUVERT_TEST_ADMIN_TOKEN        a homeserver admin's access token (test users are made with it)
//   KUVERT_TEST_REGISTRATION       the registration file the homeserver loaded; Kuvert listens
//                                  on the port of its url
import { randomBytes } from "node:crypto";
import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { stringify } from "yaml";
import { parseConfig } from "../../appservice/config/load.ts";
import type { KuvertConfig } from "../../appservice/config/schema.ts";
import { Kuvert } from "../../appservice/kuvert.ts";
import { buildRegistration, readRegistration, type Registration } from "../../appservice/matrix/registration.ts";
import { openDatabase } from "../../appservice/db/database.ts";
import { migrate } from "../../appservice/db/migrate.ts";
import { createToken } from "../../appservice/tokens/tokens.ts";
import { TestHomeserver, type HomeserverOptions, type RoomEvent } from "@kuvert/test-homeserver";
import { downloadAsClient, TestUser, type HomeserverAccess } from "./matrix.ts";
import { startClamd, type Clamd } from "./clamd.ts";
import { freshDatabaseUrl } from "./database.ts";
import { startSmtp, type SmtpServer } from "./smtp.ts";
import { freePort } from "./ports.ts";
import { startSynapse, synapsePython, type Synapse } from "./synapse.ts";

/** An event as the client-server API serves it. */
export type { RoomEvent };

export const repoRoot = join(import.meta.dirname, "..", "..");
export const artifactsDir = join(repoRoot, "test-artifacts");

export function realHomeserver(): { url: string; serverName: string; adminToken: string; registrationFile: string } | undefined {
  const url = process.env.KUVERT_TEST_HOMESERVER_URL;
  if (!url) return undefined;
  const need = ["KUVERT_TEST_HOMESERVER_NAME", "KUVERT_TEST_ADMIN_TOKEN", "KUVERT_TEST_REGISTRATION"].filter((k) => !process.env[k]);
  if (need.length) throw new Error(`KUVERT_TEST_HOMESERVER_URL is set, so these are needed too: ${need.join(", ")}`);
  return {
    url,
    serverName: process.env.KUVERT_TEST_HOMESERVER_NAME!,
    adminToken: process.env.KUVERT_TEST_ADMIN_TOKEN!,
    registrationFile: process.env.KUVERT_TEST_REGISTRATION!,
  };
}

/**
 * Whether each suite gets a fresh Synapse: KUVERT_TEST_SYNAPSE names one and KUVERT_TEST_HOMESERVER
 * is not "fixture" (npm test sets that for its first pass, which runs on the test homeserver).
 */
export function suitesOnSynapse(): boolean {
  return process.env.KUVERT_TEST_HOMESERVER !== "fixture" && synapsePython() !== undefined;
}

/** The server name the suites' homeserver has, known before it starts (user IDs planned ahead use it). */
export function testServerName(): string {
  return realHomeserver()?.serverName ?? (suitesOnSynapse() ? "localhost" : "kuvert.test");
}

/** testServerName() as a regular-expression fragment (its dots escaped). */
export function testServerPattern(): string {
  return testServerName().replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

export interface StackOptions {
  name: string;
  database?: "postgres" | "pglite";
  /** Changes to the configuration Kuvert gets. */
  configure?: (config: Record<string, unknown>) => void;
  /** Run Kuvert as a child process (to kill it) instead of in this process. */
  childProcess?: boolean;
  /** Options of the test homeserver (ignored against a real homeserver). */
  homeserver?: Pick<HomeserverOptions, "sso" | "synapse">;
  /**
   * End-to-end encrypted organisation rooms (organisations.encryption, a secret for the bot's
   * device), and a homeserver that gives the appservice what the device needs: to-device messages,
   * device lists and key counts in transactions, requests as a device (Synapse's
   * experimental_features; the test homeserver's experimentalFeatures).
   */
  encryption?: boolean;
  /** Options of the suite's clamd (e.g. a setting left out, to test the canaries). */
  clamd?: Parameters<typeof startClamd>[0];
}

export interface ApiResponse<T = Record<string, unknown>> {
  status: number;
  body: T;
}

export class Stack {
  readonly name: string;
  /** The test homeserver; undefined against a real homeserver. Tests that need it say so in their name. */
  readonly hs: TestHomeserver | undefined;
  /** The Synapse this suite started (KUVERT_TEST_SYNAPSE). */
  readonly synapse: Synapse | undefined;
  readonly access: HomeserverAccess;
  readonly registration: Registration;
  readonly config: KuvertConfig;
  readonly rawConfig: Record<string, unknown>;
  readonly workDir: string;
  readonly clamd: Clamd;
  readonly smtp: SmtpServer;
  kuvert: Kuvert | undefined;
  child: ChildProcess | undefined;
  adminToken = "";
  staff!: TestUser;
  readonly #users: TestUser[] = [];

  constructor(parts: { name: string; hs: TestHomeserver | undefined; synapse?: Synapse; access: HomeserverAccess; registration: Registration; config: KuvertConfig; rawConfig: Record<string, unknown>; workDir: string; clamd: Clamd; smtp: SmtpServer }) {
    this.name = parts.name;
    this.hs = parts.hs;
    this.synapse = parts.synapse;
    this.access = parts.access;
    this.registration = parts.registration;
    this.config = parts.config;
    this.rawConfig = parts.rawConfig;
    this.workDir = parts.workDir;
    this.clamd = parts.clamd;
    this.smtp = parts.smtp;
  }

  /**
   * The test homeserver, for tests named "(test homeserver: …)": faults on demand and forms only a
   * fixture has. `npm test` leaves those tests out of a run against a real homeserver.
   */
  get fixture(): TestHomeserver {
    if (!this.hs) throw new Error("this test needs the test homeserver (@kuvert/test-homeserver); npm test runs it only in the fixture pass");
    return this.hs;
  }

  get publicUrl(): string {
    if (this.kuvert) return `http://127.0.0.1:${this.kuvert.publicPort}`;
    return `http://127.0.0.1:${this.config.publicApi.listener.port}`;
  }

  get botUserId(): string {
    return `@${this.config.appservice.botLocalpart}:${this.config.homeserver.domain}`;
  }

  /** A request to Kuvert's public API with the admin token (or `token`). */
  async api<T = Record<string, unknown>>(method: string, path: string, body?: unknown, opts: { token?: string | null; contentType?: string; headers?: Record<string, string> } = {}): Promise<ApiResponse<T>> {
    const token = opts.token === undefined ? this.adminToken : opts.token;
    const headers: Record<string, string> = { ...opts.headers };
    if (token) headers.authorization = `Bearer ${token}`;
    let payload: BodyInit | undefined;
    if (body !== undefined) {
      headers["content-type"] = opts.contentType ?? "application/json";
      payload = typeof body === "string" ? body : Buffer.isBuffer(body) ? Uint8Array.from(body) : JSON.stringify(body);
    }
    const res = await fetch(`${this.publicUrl}${path}`, { method, headers, body: payload });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // not JSON: keep the text
    }
    return { status: res.status, body: parsed as T };
  }

  /** Sends a transaction to Kuvert's appservice API as the homeserver does (AS API §"Pushing events"). */
  async pushTransaction(txnId: string, events: unknown[], token: string | null = this.registration.hs_token): Promise<ApiResponse> {
    const res = await fetch(`http://127.0.0.1:${this.config.appservice.listener.port}/_matrix/app/v1/transactions/${encodeURIComponent(txnId)}`, {
      method: "PUT",
      headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify({ events }),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  }

  async user(prefix: string): Promise<TestUser> {
    const user = await TestUser.create(this.access, prefix);
    this.#users.push(user);
    return user;
  }

  /** Starts Kuvert (again), in this process or as a child process. */
  async startKuvert(childProcess = false): Promise<void> {
    if (!childProcess) {
      this.kuvert = await Kuvert.start(this.config, { registration: this.registration, logDestination: logFile(this.name) });
      return;
    }
    const configFile = join(this.workDir, "config.yaml");
    writeFileSync(configFile, stringify(this.rawConfig));
    const log = createWriteStream(join(artifactsDir, "logs", `${this.name}.child.log`), { flags: "a" });
    const child = spawn(process.execPath, [join(repoRoot, "bin", "kuvert.js"), "--config", configFile, "start"], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env } });
    child.stdout.pipe(log);
    child.stderr.pipe(log);
    this.child = child;
    // A child starts slower than the suite's own processes on a loaded machine (two Synapses, clamd).
    await waitFor(
      "Kuvert to answer /healthz",
      async () => {
        if (child.exitCode !== null) throw new Error(`Kuvert exited with ${child.exitCode}; see test-artifacts/logs/${this.name}.child.log`);
        const res = await fetch(`${this.publicUrl}/healthz`).catch(() => undefined);
        return res?.ok === true;
      },
      60_000,
    );
  }

  /** Kills the child Kuvert at once (SIGKILL: no cleanup, as in a crash). */
  async killKuvert(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGKILL");
    await exited;
    this.child = undefined;
  }

  async stopKuvert(): Promise<void> {
    if (this.kuvert) {
      await this.kuvert.stop();
      this.kuvert = undefined;
    }
    // A child that already ended (a signal ends it without an exit code) emits no second "exit": waiting for one would hang.
    const child = this.child;
    this.child = undefined;
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGTERM");
      await exited;
    }
  }

  async stop(): Promise<void> {
    for (const u of this.#users) u.stop();
    await this.stopKuvert();
    await this.hs?.stop();
    await this.synapse?.stop();
    await this.clamd.stop();
    await this.smtp.stop();
    rmSync(this.workDir, { recursive: true, force: true });
  }

  /**
   * A client-server API request as Kuvert's bot (the appservice's as_token), which is in every
   * room Kuvert manages: how the tests observe rooms on any homeserver.
   */
  async asBot<T>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await fetch(`${this.access.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${this.registration.as_token}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const json = (await res.json().catch(() => ({}))) as T & { errcode?: string; error?: string };
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${json.errcode ?? ""} ${json.error ?? ""}`);
    return json;
  }

  /** The room's timeline, oldest first (CS API §"GET /_matrix/client/v3/rooms/{roomId}/messages", paginated backwards). */
  async timeline(roomId: string, max = 2000): Promise<RoomEvent[]> {
    const events: RoomEvent[] = [];
    let from: string | undefined;
    while (events.length < max) {
      const query = new URLSearchParams({ dir: "b", limit: "100", ...(from ? { from } : {}) });
      const page = await this.asBot<{ chunk: RoomEvent[]; end?: string }>("GET", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/messages?${query}`);
      events.push(...page.chunk);
      if (!page.end || page.chunk.length === 0) break;
      from = page.end;
    }
    return events.reverse();
  }

  /** The room's current state (CS API §"GET /_matrix/client/v3/rooms/{roomId}/state"). */
  async roomState(roomId: string): Promise<RoomEvent[]> {
    return this.asBot<RoomEvent[]>("GET", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state`);
  }

  /** Downloads media as a client does (authenticated media where the homeserver has it); undefined when it is not there (or quarantined). */
  async download(mxc: string): Promise<Buffer | undefined> {
    const res = await downloadAsClient(this.access.url, this.registration.as_token, mxc);
    if (res.status === 404) return undefined;
    if (res.status !== 200) throw new Error(`downloading ${mxc}: ${res.status} ${res.body.toString("utf8")}`);
    return res.body;
  }

  /** Waits until the organisation's room exists (and Kuvert finished its room work). */
  async roomOf(organisationId: string): Promise<string> {
    let roomId = "";
    await waitFor(`the room of ${organisationId}`, async () => {
      const res = await this.api<{ roomId: string | null; roomState: string }>("GET", `/api/v1/organisations/${organisationId}`);
      if (res.status === 200 && res.body.roomId && res.body.roomState === "ready") roomId = res.body.roomId;
      return roomId !== "";
    });
    return roomId;
  }
}

function logFile(name: string): NodeJS.WritableStream {
  mkdirSync(join(artifactsDir, "logs"), { recursive: true });
  return createWriteStream(join(artifactsDir, "logs", `${name}.log`), { flags: "a" });
}

/** Polls `check` until it holds; `what` (or what it returns, for progress) names it in the timeout. */
export async function waitFor(what: string | (() => string), check: () => Promise<boolean> | boolean, timeoutMs = 20_000, intervalMs = 100): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      if (await check()) return;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${typeof what === "function" ? what() : what}${lastError ? `: ${(lastError as Error).message}` : ""}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** Synapse's `experimental_features` (and the test homeserver's) for to-device messages, key counts and device lists in transactions. */
export const E2EE_FEATURES = { msc2409_to_device_messages_enabled: true, msc3202_transaction_extensions: true };

/** Starts homeserver, database and Kuvert for one suite, with a staff member who is an admin. */
export async function startStack(opts: StackOptions): Promise<Stack> {
  mkdirSync(join(artifactsDir, "logs"), { recursive: true });
  for (const suffix of [".log", ".child.log", ".synapse.log"]) rmSync(join(artifactsDir, "logs", `${opts.name}${suffix}`), { force: true });
  const workDir = join(artifactsDir, "work", `${opts.name}-${randomBytes(3).toString("hex")}`);
  mkdirSync(workDir, { recursive: true });
  const real = realHomeserver();
  const databaseUrl = await freshDatabaseUrl(opts.database ?? "postgres");
  // Each suite has its own clamd and SMTP server, so a suite can stop them without disturbing others.
  const [clamd, smtp] = await Promise.all([startClamd(opts.clamd), startSmtp()]);

  let hs: TestHomeserver | undefined;
  let synapse: Synapse | undefined;
  let stack: Stack | undefined;
  try {
    let access: HomeserverAccess;
    let registration: Registration;
    let asPort: number;
    const baseConfig = (hsUrl: string, serverName: string, port: number, registrationFile: string): Record<string, unknown> => ({
      homeserver: { url: hsUrl, domain: serverName },
      appservice: { url: `http://127.0.0.1:${port}`, registrationFile, listener: { bindAddress: "127.0.0.1", port } },
      publicApi: { listener: { bindAddress: "127.0.0.1", port: 0 } },
      metrics: { listener: { bindAddress: "127.0.0.1", port: 0 } },
      database: databaseUrl ? { url: databaseUrl } : { embeddedDir: join(workDir, "db") },
      workers: { leaseSeconds: 5, pollMilliseconds: 200, concurrency: 4 },
      logging: { level: "info", pseudonymKey: "test-pseudonym-key" },
      documents: { stagingDir: join(workDir, "staging") },
      scanning: { host: clamd.host, port: clamd.port, timeoutSeconds: 10 },
      mail: { smtp: { host: smtp.host, port: smtp.port }, from: "Kuvert <kuvert@body.example>", staffMailbox: "staff@body.example", combineWindowSeconds: 1, maxAttempts: 5 },
    });
    const homeserverIs = (url: string, serverName: string, adminToken: string): HomeserverAccess => {
      Object.assign(raw.homeserver as Record<string, unknown>, { url, domain: serverName, adminToken });
      return { url, serverName, adminToken };
    };

    let raw: Record<string, unknown>;
    const encryptionConfig = (config: Record<string, unknown>) => {
      if (!opts.encryption) return;
      config.organisations = { ...(config.organisations as object | undefined), encryption: true };
      config.e2ee = { secret: `test-e2ee-secret-${randomBytes(24).toString("hex")}` };
    };
    if (real) {
      registration = readRegistration(real.registrationFile);
      asPort = Number(new URL(registration.url ?? "http://127.0.0.1:9993").port || 80);
      raw = baseConfig(real.url, real.serverName, asPort, real.registrationFile);
      encryptionConfig(raw);
      access = homeserverIs(real.url, real.serverName, real.adminToken);
    } else {
      // The registration names the server, so it is made for the server name the homeserver will have.
      const serverName = testServerName();
      asPort = await freePort();
      const registrationFile = join(workDir, "registration.yaml");
      raw = baseConfig("http://127.0.0.1:1", serverName, asPort, registrationFile);
      encryptionConfig(raw);
      registration = buildRegistration(parseConfig(raw));
      writeFileSync(registrationFile, stringify(registration));
      if (suitesOnSynapse()) {
        synapse = await startSynapse({
          dir: join(workDir, "synapse"),
          registrations: [registration],
          logFile: join(artifactsDir, "logs", `${opts.name}.synapse.log`),
          ...(opts.encryption ? { extra: { experimental_features: { ...E2EE_FEATURES, msc3202_device_masquerading: true } } } : {}),
        });
        access = homeserverIs(synapse.url, synapse.serverName, synapse.adminToken);
      } else {
        const adminToken = `admin-${randomBytes(16).toString("hex")}`;
        hs = new TestHomeserver({ serverName, registrations: [registration], adminToken, asRetryBaseMs: 100, ...(opts.encryption ? { experimentalFeatures: E2EE_FEATURES } : {}), ...opts.homeserver });
        await hs.start();
        access = homeserverIs(hs.url, serverName, adminToken);
      }
    }

    const staff = await TestUser.create(access, "staff", "Staff Member");
    raw.staff = [{ userId: staff.userId, roles: ["admin"] }];
    opts.configure?.(raw);
    // Child processes get the same port for the public API each time they start.
    if (opts.childProcess) (raw.publicApi as { listener: { port: number } }).listener.port = await freePort();
    const config = parseConfig(raw);
    stack = new Stack({ name: opts.name, hs, synapse, access, registration, config, rawConfig: raw, workDir, clamd, smtp });
    stack.staff = staff;

    // The admin token is made in the database before Kuvert starts, as an operator does with `kuvert token create`.
    const db = await openDatabase({ url: databaseUrl, embeddedDir: join(workDir, "db"), poolSize: 2 });
    try {
      await migrate(db);
      stack.adminToken = await createToken(db, "test-admin", ["admin"], "test");
    } finally {
      await db.close();
    }
    await stack.startKuvert(opts.childProcess === true);
    return stack;
  } catch (err) {
    // A suite whose setup failed leaves nothing running: its own `after` cannot reach what was started here.
    if (stack) await stack.stop().catch(() => undefined);
    else await Promise.allSettled([hs?.stop(), synapse?.stop(), clamd.stop(), smtp.stop()]);
    throw err;
  }
}
