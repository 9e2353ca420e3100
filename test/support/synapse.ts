// A real Synapse for one suite: the pure-Python Synapse 1.67 that ../shared/synapse/setup.sh
// prepares (see its README), in a fresh directory (fresh SQLite database, fresh keys), on a
// free port, with the given modules and application service registrations, and an admin made
// by shared-secret registration. Self-contained, so that any suite can use it.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { createHmac, randomBytes } from "node:crypto";
import { createWriteStream, existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { stringify } from "yaml";
import { freePort } from "./ports.ts";

const repoRoot = join(import.meta.dirname, "..", "..");

/** Where setup.sh is: `shared/synapse` beside the repository (or beside the folder of worktrees), or undefined. */
export function synapseSetupDir(): string | undefined {
  for (const up of [[".."], ["..", ".."]]) {
    const dir = join(repoRoot, ...up, "shared", "synapse");
    if (existsSync(join(dir, "setup.sh"))) return dir;
  }
  return undefined;
}

export interface SynapseModule {
  /** `python_module.ClassName`, as in homeserver.yaml's `modules`. */
  module: string;
  config?: Record<string, unknown>;
  /** A folder to put on PYTHONPATH so that the module is found. */
  pythonPath?: string;
}

export interface SynapseOptions {
  /** Names the log file test-artifacts/logs/<name>.synapse.log. */
  name: string;
  modules?: SynapseModule[];
  /** Application service registrations to load (objects, written as YAML files). */
  registration?: Record<string, unknown> | Record<string, unknown>[];
  /** Extra homeserver.yaml keys (they win over the defaults). */
  config?: Record<string, unknown>;
}

export interface Synapse {
  url: string;
  serverName: string;
  adminToken: string;
  stop(): Promise<void>;
}

const unlimited = { per_second: 1000, burst_count: 10000 };

async function waitUntil(what: string, check: () => Promise<boolean>, child: ChildProcess, log: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`Synapse exited with ${child.exitCode} before ${what}; see ${log}`);
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`Synapse: timed out waiting for ${what}; see ${log}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Starts Synapse; throws when setup.sh is absent (check synapseSetupDir() first and skip). */
export async function startSynapse(opts: SynapseOptions): Promise<Synapse> {
  const setupDir = synapseSetupDir();
  if (!setupDir) throw new Error("no shared/synapse/setup.sh beside the repository");
  const setup = spawnSync("bash", [join(setupDir, "setup.sh")], { encoding: "utf8" });
  if (setup.status !== 0) throw new Error(`setup.sh failed (${setup.status}): ${setup.stderr}`);
  const home = setup.stdout.trim().split("\n").pop()!;
  const python = join(home, "venv", "bin", "python");

  const run = join(repoRoot, "test-artifacts", "work", `synapse-${opts.name}-${randomBytes(3).toString("hex")}`);
  mkdirSync(run, { recursive: true });
  const logsDir = join(repoRoot, "test-artifacts", "logs");
  mkdirSync(logsDir, { recursive: true });
  const logPath = join(logsDir, `${opts.name}.synapse.log`);

  const port = await freePort();
  const serverName = "localhost";
  const sharedSecret = randomBytes(24).toString("hex");
  const registrations = opts.registration === undefined ? [] : Array.isArray(opts.registration) ? opts.registration : [opts.registration];
  const registrationFiles = registrations.map((reg, i) => {
    const file = join(run, `registration-${i}.yaml`);
    writeFileSync(file, stringify(reg));
    return file;
  });
  const config: Record<string, unknown> = {
    server_name: serverName,
    public_baseurl: `http://127.0.0.1:${port}/`,
    pid_file: join(run, "homeserver.pid"),
    listeners: [{ port, type: "http", tls: false, x_forwarded: false, bind_addresses: ["127.0.0.1"], resources: [{ names: ["client", "openid"], compress: false }] }],
    database: { name: "sqlite3", args: { database: join(run, "homeserver.db") } },
    media_store_path: join(run, "media"),
    max_upload_size: "2048M",
    signing_key_path: join(run, "signing.key"),
    registration_shared_secret: sharedSecret,
    enable_registration: false,
    report_stats: false,
    macaroon_secret_key: randomBytes(24).toString("hex"),
    form_secret: randomBytes(24).toString("hex"),
    trusted_key_servers: [],
    suppress_key_server_warning: true,
    app_service_config_files: registrationFiles,
    rc_message: unlimited,
    rc_registration: unlimited,
    rc_login: { address: unlimited, account: unlimited, failed_attempts: unlimited },
    rc_admin_redaction: unlimited,
    rc_joins: { local: unlimited, remote: unlimited },
    rc_joins_per_room: unlimited,
    rc_invites: { per_room: unlimited, per_user: unlimited, per_issuer: unlimited },
    modules: (opts.modules ?? []).map((m) => ({ module: m.module, config: m.config ?? {} })),
    ...opts.config,
  };
  const configFile = join(run, "homeserver.yaml");
  writeFileSync(configFile, stringify(config));
  const pythonPath = [...(opts.modules ?? []).flatMap((m) => (m.pythonPath ? [m.pythonPath] : [])), process.env.PYTHONPATH].filter(Boolean).join(":");
  const env = { ...process.env, PYTHONPATH: pythonPath };

  const keys = spawnSync(python, ["-m", "synapse.app.homeserver", "-c", configFile, "--generate-keys"], { cwd: run, env, encoding: "utf8" });
  if (keys.status !== 0) throw new Error(`synapse --generate-keys failed: ${keys.stderr}`);

  const log = createWriteStream(logPath, { flags: "w" });
  const child = spawn(python, ["-m", "synapse.app.homeserver", "-c", configFile], { cwd: run, env, stdio: ["ignore", "pipe", "pipe"] });
  child.stdout.pipe(log);
  child.stderr.pipe(log);
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (child.exitCode === null) {
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGTERM");
      const killed = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(killed);
    }
    log.end();
    rmSync(run, { recursive: true, force: true });
  };
  try {
    await waitUntil("GET /_matrix/client/versions", async () => (await fetch(`${url}/_matrix/client/versions`)).ok, child, logPath);
    // Admin API §"Shared-Secret Registration".
    const { nonce } = (await (await fetch(`${url}/_synapse/admin/v1/register`)).json()) as { nonce: string };
    const username = "kuvert-test-admin";
    const password = randomBytes(16).toString("hex");
    const mac = createHmac("sha1", sharedSecret).update(`${nonce}\0${username}\0${password}\0admin`).digest("hex");
    const res = await fetch(`${url}/_synapse/admin/v1/register`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ nonce, username, password, admin: true, mac }) });
    const body = (await res.json()) as { access_token?: string; error?: string };
    if (!res.ok || !body.access_token) throw new Error(`admin registration failed: ${res.status} ${body.error ?? ""}`);
    return { url, serverName, adminToken: body.access_token, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
