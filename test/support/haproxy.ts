// The deployment's balancer for the tests: Debian's HAProxy running deploy/haproxy/haproxy.cfg,
// changed only where the tests are not Docker: the replicas are the suite's Kuvert processes on
// 127.0.0.1, listed as servers (in place of Docker's DNS and its server-template), and the two
// frontends bind free ports on 127.0.0.1 (in place of 9993 and 8080). Health checks, retries,
// redispatch and timeouts are the deployment's own. Stopped by its PID.
import { spawn } from "node:child_process";
import { createWriteStream, existsSync, readFileSync, writeFileSync } from "node:fs";
import { createConnection } from "node:net";
import { join } from "node:path";
import { freePort } from "./ports.ts";

const haproxyBin = existsSync("/usr/sbin/haproxy") ? "/usr/sbin/haproxy" : "haproxy";
export const deployedHaproxyCfg = join(import.meta.dirname, "..", "..", "deploy", "haproxy", "haproxy.cfg");

/** One Kuvert process behind the balancer: its appservice and public listener ports on 127.0.0.1. */
export interface Backend {
  appservice: number;
  public: number;
}

/** What the deployment's configuration becomes for the tests; throws if it no longer has the shape this relies on. */
export function balancerConfig(deployed: string, ports: { appservice: number; public: number }, backends: Backend[], statsSocket?: string): string {
  let cfg = deployed;
  const replace = (from: RegExp, to: string) => {
    if (!from.test(cfg)) throw new Error(`deploy/haproxy/haproxy.cfg has no ${from}: update test/support/haproxy.ts with it`);
    cfg = cfg.replace(from, to);
  };
  replace(/^resolvers docker\n(?: {2}.*\n)+/m, "");
  replace(/^ {2}bind :9993$/m, `  bind 127.0.0.1:${ports.appservice}`);
  replace(/^ {2}bind :8080$/m, `  bind 127.0.0.1:${ports.public}`);
  replace(/ resolvers docker init-addr none resolve-prefer ipv4$/gm, "");
  const servers = (listener: keyof Backend) => backends.map((b, i) => `  server kuvert-${i + 1} 127.0.0.1:${b[listener]}`).join("\n");
  replace(/^ {2}server-template kuvert \d+ kuvert:9993$/m, servers("appservice"));
  replace(/^ {2}server-template kuvert \d+ kuvert:8080$/m, servers("public"));
  // For the suite only: a socket to ask which servers HAProxy counts as up.
  if (statsSocket) replace(/^global\n/m, `global\n  stats socket ${statsSocket} mode 600 level user\n`);
  return cfg;
}

export interface Balancer {
  /** Where the homeserver reaches "Kuvert": the appservice frontend. */
  appserviceUrl: string;
  /** The public frontend (API, console), as the reverse proxy in front of the stack reaches it. */
  publicUrl: string;
  pid: number;
  /** Requests each backend answered so far (with `status`: with that status), from HAProxy's log: "appservice kuvert-1" → n. */
  answered(status?: number): Map<string, number>;
  /** Waits until HAProxy counts every backend's servers as up (its health checks passed). */
  allUp(timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

export interface BalancerOptions {
  workDir: string;
  backends: Backend[];
  logPath: string;
  /** The frontends' ports (default: free ones), e.g. the ones a registration already names. */
  ports?: { appservice: number; public: number };
}

/** Starts HAProxy in front of `backends` and waits until its public frontend answers. */
export async function startBalancer(opts: BalancerOptions): Promise<Balancer> {
  const ports = opts.ports ?? { appservice: await freePort(), public: await freePort() };
  const file = join(opts.workDir, "haproxy.cfg");
  const socket = join(opts.workDir, "haproxy.sock");
  writeFileSync(file, balancerConfig(readFileSync(deployedHaproxyCfg, "utf8"), ports, opts.backends, socket));
  writeFileSync(opts.logPath, "");
  const log = createWriteStream(opts.logPath, { flags: "a" });
  // -db: in the foreground, logging to standard output as the container does.
  const child = spawn(haproxyBin, ["-db", "-f", file], { stdio: ["ignore", "pipe", "pipe"] });
  child.stdout.pipe(log);
  child.stderr.pipe(log);
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const publicUrl = `http://127.0.0.1:${ports.public}`;
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`HAProxy exited with ${child.exitCode}; see ${opts.logPath}`);
    // monitor-uri answers 200 or 503 by itself: HAProxy listens once it answers at all.
    const res = await fetch(`${publicUrl}/proxy-health`).catch(() => undefined);
    if (res) break;
    if (Date.now() > deadline) throw new Error(`HAProxy did not listen within 20 s; see ${opts.logPath}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    appserviceUrl: `http://127.0.0.1:${ports.appservice}`,
    publicUrl,
    pid: child.pid!,
    answered(status?: number) {
      const counts = new Map<string, number>();
      // httplog lines name "<frontend> <backend>/<server> <timers> <status>".
      for (const m of readFileSync(opts.logPath, "utf8").matchAll(/ kuvert-(appservice|public)\/(kuvert-\d+) \S+ (-?\d+) /g)) {
        if (status !== undefined && Number(m[3]) !== status) continue;
        const key = `${m[1]} ${m[2]}`;
        counts.set(key, (counts.get(key) ?? 0) + 1);
      }
      return counts;
    },
    async allUp(timeoutMs = 60_000) {
      const deadline = Date.now() + timeoutMs;
      let states = "";
      for (;;) {
        // "show stat": CSV, one line per frontend, server and backend; field 18 is the status.
        const rows = (await ask(socket, "show stat")).split("\n").map((l) => l.split(","));
        const servers = rows.filter((r) => /^kuvert-(appservice|public)$/.test(r[0] ?? "") && /^kuvert-\d+$/.test(r[1] ?? ""));
        states = servers.map((r) => `${r[0]}/${r[1]} ${r[17]}`).join(", ");
        if (servers.length === 2 * opts.backends.length && servers.every((r) => r[17] === "UP")) return;
        if (Date.now() > deadline) throw new Error(`HAProxy's servers are not all up within ${timeoutMs / 1000} s: ${states}`);
        await new Promise((r) => setTimeout(r, 250));
      }
    },
    async stop() {
      if (child.exitCode === null) child.kill("SIGTERM");
      await exited;
    },
  };
}

/** One command on HAProxy's stats socket; answers what it printed. */
function ask(socket: string, command: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = "";
    const conn = createConnection(socket, () => conn.end(`${command}\n`));
    conn.setEncoding("utf8");
    conn.on("data", (d: string) => (out += d));
    conn.on("end", () => resolve(out));
    conn.on("error", reject);
  });
}
