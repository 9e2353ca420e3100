// The deployment's balancer for the tests: Debian's HAProxy running deploy/haproxy/haproxy.cfg,
// changed only where the tests are not Docker: the replicas are the suite's Kuvert processes on
// 127.0.0.1, listed as servers (in place of Docker's DNS and its server-template), and the two
// frontends bind free ports on 127.0.0.1 (in place of 9993 and 8080). Health checks, retries,
// redispatch and timeouts are the deployment's own. Stopped by its PID.
import { spawn } from "node:child_process";
import { createWriteStream, existsSync, readFileSync, writeFileSync } from "node:fs";
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
export function balancerConfig(deployed: string, ports: { appservice: number; public: number }, backends: Backend[]): string {
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
  return cfg;
}

export interface Balancer {
  /** Where the homeserver reaches "Kuvert": the appservice frontend. */
  appserviceUrl: string;
  /** The public frontend (API, console), as the reverse proxy in front of the stack reaches it. */
  publicUrl: string;
  pid: number;
  stop(): Promise<void>;
}

/** Starts HAProxy in front of `backends` and waits until its public frontend answers. */
export async function startBalancer(workDir: string, backends: Backend[], logPath: string): Promise<Balancer> {
  const ports = { appservice: await freePort(), public: await freePort() };
  const file = join(workDir, "haproxy.cfg");
  writeFileSync(file, balancerConfig(readFileSync(deployedHaproxyCfg, "utf8"), ports, backends));
  const log = createWriteStream(logPath, { flags: "a" });
  // -db: in the foreground, logging to standard output as the container does.
  const child = spawn(haproxyBin, ["-db", "-f", file], { stdio: ["ignore", "pipe", "pipe"] });
  child.stdout.pipe(log);
  child.stderr.pipe(log);
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const publicUrl = `http://127.0.0.1:${ports.public}`;
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`HAProxy exited with ${child.exitCode}; see ${logPath}`);
    // monitor-uri answers 200 or 503 by itself: HAProxy listens once it answers at all.
    const res = await fetch(`${publicUrl}/proxy-health`).catch(() => undefined);
    if (res) break;
    if (Date.now() > deadline) throw new Error(`HAProxy did not listen within 20 s; see ${logPath}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    appserviceUrl: `http://127.0.0.1:${ports.appservice}`,
    publicUrl,
    pid: child.pid!,
    async stop() {
      if (child.exitCode === null) child.kill("SIGTERM");
      await exited;
    },
  };
}
