// A real Synapse for one suite: its own directory, SQLite, a free port, the registrations it is
// given, and an admin made by shared-secret registration (Synapse admin API "Shared-Secret
// Registration", POST /_synapse/admin/v1/register).
//
// Which Synapse: KUVERT_TEST_SYNAPSE names an installation, either a directory that
// `../shared/synapse/setup.sh` made (it has `venv/bin/python`) or any virtualenv in which
// `matrix-synapse` is installed (it has `bin/python`), or that Python itself.
import { spawn, type ChildProcess } from "node:child_process";
import { createHmac, randomBytes } from "node:crypto";
import { createWriteStream, existsSync, mkdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { stringify } from "yaml";
import { freePort } from "./ports.ts";

export interface Synapse {
  url: string;
  serverName: string;
  /** An admin's access token. */
  adminToken: string;
  /** Synapse's version as its admin API reports it. */
  version: string;
  dir: string;
  stop(): Promise<void>;
}

export interface SynapseOptions {
  /** Where its files go (removed on stop). */
  dir: string;
  /** Application service registrations (objects, written as YAML files). */
  registrations?: object[];
  /** Synapse modules (`modules:` in homeserver.yaml) and where their Python code is. */
  modules?: { module: string; config?: Record<string, unknown> }[];
  pythonPath?: string[];
  /** Keep Synapse's default message rate limit (a test of how Kuvert copes with 429). */
  defaultRateLimits?: boolean;
  /** More homeserver.yaml keys. */
  extra?: Record<string, unknown>;
  /** Where Synapse's own log goes. */
  logFile?: string;
}

/** The Python that runs Synapse, from KUVERT_TEST_SYNAPSE; undefined when that is not set. */
export function synapsePython(): string | undefined {
  const named = process.env.KUVERT_TEST_SYNAPSE;
  if (!named) return undefined;
  for (const candidate of [join(named, "venv", "bin", "python"), join(named, "bin", "python"), named]) {
    if (existsSync(candidate) && statSync(candidate).isFile()) return candidate;
  }
  throw new Error(`KUVERT_TEST_SYNAPSE=${named}: no Python found there (looked for venv/bin/python and bin/python)`);
}

const lifted = { per_second: 1000, burst_count: 10000 };

export async function startSynapse(opts: SynapseOptions): Promise<Synapse> {
  const python = synapsePython();
  if (!python) throw new Error("KUVERT_TEST_SYNAPSE is not set: it names the Synapse installation to run");
  const dir = opts.dir;
  mkdirSync(join(dir, "media"), { recursive: true });
  const port = await freePort();
  const serverName = "localhost";
  const sharedSecret = randomBytes(24).toString("hex");
  // Synapse's signing key file: "ed25519 <key id> <unpadded base64 of the 32-byte seed>".
  writeFileSync(join(dir, "signing.key"), `ed25519 a_test ${randomBytes(32).toString("base64").replace(/=+$/, "")}\n`);
  const registrationFiles = (opts.registrations ?? []).map((reg, i) => {
    const file = join(dir, `registration-${i}.yaml`);
    writeFileSync(file, stringify(reg));
    return file;
  });
  const config: Record<string, unknown> = {
    server_name: serverName,
    public_baseurl: `http://127.0.0.1:${port}/`,
    pid_file: join(dir, "homeserver.pid"),
    listeners: [{ port, type: "http", tls: false, x_forwarded: false, bind_addresses: ["127.0.0.1"], resources: [{ names: ["client", "openid"], compress: false }] }],
    database: { name: "sqlite3", args: { database: join(dir, "homeserver.db") } },
    media_store_path: join(dir, "media"),
    max_upload_size: "50M", // Synapse's default, as in the test homeserver
    signing_key_path: join(dir, "signing.key"),
    registration_shared_secret: sharedSecret,
    enable_registration: false,
    report_stats: false,
    macaroon_secret_key: randomBytes(24).toString("hex"),
    form_secret: randomBytes(24).toString("hex"),
    trusted_key_servers: [],
    suppress_key_server_warning: true,
    app_service_config_files: registrationFiles,
    log_config: join(dir, "log.yaml"),
    modules: opts.modules ?? [],
    ...(opts.defaultRateLimits
      ? {}
      : {
          rc_message: lifted,
          rc_registration: lifted,
          rc_login: { address: lifted, account: lifted, failed_attempts: lifted },
          rc_admin_redaction: lifted,
          rc_joins: { local: lifted, remote: lifted },
          rc_joins_per_room: lifted,
          rc_invites: { per_room: lifted, per_user: lifted, per_issuer: lifted },
        }),
    ...opts.extra,
  };
  writeFileSync(join(dir, "homeserver.yaml"), stringify(config));
  // Warnings and errors to stderr (kept in the log file below); Synapse's INFO lines would be
  // one per request.
  writeFileSync(
    join(dir, "log.yaml"),
    stringify({
      version: 1,
      formatters: { precise: { format: "%(asctime)s - %(name)s - %(lineno)d - %(levelname)s - %(request)s - %(message)s" } },
      filters: { context: { "()": "synapse.logging.context.LoggingContextFilter", request: "" } },
      handlers: { console: { class: "logging.StreamHandler", formatter: "precise", filters: ["context"] } },
      root: { level: "WARNING", handlers: ["console"] },
      disable_existing_loggers: false,
    }),
  );

  const env = { ...process.env, PYTHONPATH: [...(opts.pythonPath ?? []), process.env.PYTHONPATH].filter(Boolean).join(":") };
  const child: ChildProcess = spawn(python, ["-m", "synapse.app.homeserver", "-c", join(dir, "homeserver.yaml")], { cwd: dir, stdio: ["ignore", "pipe", "pipe"], env });
  const log = createWriteStream(opts.logFile ?? join(dir, "synapse.log"), { flags: "a" });
  child.stdout!.pipe(log);
  child.stderr!.pipe(log);
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      const killer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(killer);
    }
    log.end();
  };

  try {
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`Synapse exited with ${child.exitCode} while starting; its log: ${opts.logFile ?? join(dir, "synapse.log")}`);
      const res = await fetch(`${url}/_matrix/client/versions`).catch(() => undefined);
      if (res?.ok) break;
      if (Date.now() > deadline) throw new Error(`Synapse did not answer within 60 s; its log: ${opts.logFile ?? join(dir, "synapse.log")}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    const adminToken = await registerAdmin(url, sharedSecret);
    const versionRes = await fetch(`${url}/_synapse/admin/v1/server_version`, { headers: { authorization: `Bearer ${adminToken}` } });
    const version = ((await versionRes.json()) as { server_version?: string }).server_version ?? "unknown";
    return {
      url,
      serverName,
      adminToken,
      version,
      dir,
      stop: async () => {
        await stop();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Synapse admin API "Shared-Secret Registration": an admin account, answered with its token. */
async function registerAdmin(url: string, sharedSecret: string): Promise<string> {
  const endpoint = `${url}/_synapse/admin/v1/register`;
  const { nonce } = (await (await fetch(endpoint)).json()) as { nonce: string };
  const username = "kuvert-test-admin";
  const password = randomBytes(12).toString("hex");
  const mac = createHmac("sha1", sharedSecret).update(`${nonce}\0${username}\0${password}\0admin`).digest("hex");
  const res = await fetch(endpoint, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ nonce, username, password, admin: true, mac }),
  });
  const body = (await res.json()) as { access_token?: string; error?: string };
  if (!res.ok || !body.access_token) throw new Error(`shared-secret registration of the test admin failed: ${res.status} ${body.error ?? ""}`);
  return body.access_token;
}
