// Several Kuvert processes of one stack: the stack's configuration (database, staging,
// registration), each process with listeners of its own, each a child process that can be
// killed (SIGKILL, as in a crash) and started again on the same ports.
import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream, writeFileSync } from "node:fs";
import { join } from "node:path";
import { stringify } from "yaml";
import { artifactsDir, repoRoot, waitFor, type Stack } from "./harness.ts";
import { startBalancer, type Balancer } from "./haproxy.ts";
import { freePort } from "./ports.ts";

export class KuvertProcess {
  readonly name: string;
  readonly asPort: number;
  readonly publicPort: number;
  readonly #configFile: string;
  readonly #logFile: string;
  #child: ChildProcess | undefined;
  #ready = false;

  private constructor(name: string, asPort: number, publicPort: number, configFile: string, logFile: string) {
    this.name = name;
    this.asPort = asPort;
    this.publicPort = publicPort;
    this.#configFile = configFile;
    this.#logFile = logFile;
  }

  /** A process with the stack's configuration and listeners of its own (not started); its log in `logDir`. */
  static async of(stack: Stack, name: string, logDir = join(artifactsDir, "logs")): Promise<KuvertProcess> {
    const [asPort, publicPort, metricsPort] = [await freePort(), await freePort(), await freePort()];
    const raw = structuredClone(stack.rawConfig) as Record<string, Record<string, unknown>>;
    raw.appservice!.listener = { bindAddress: "127.0.0.1", port: asPort };
    raw.publicApi!.listener = { bindAddress: "127.0.0.1", port: publicPort };
    raw.metrics!.listener = { bindAddress: "127.0.0.1", port: metricsPort };
    const configFile = join(stack.workDir, `${name}.yaml`);
    writeFileSync(configFile, stringify(raw));
    return new KuvertProcess(`${stack.name}.${name}`, asPort, publicPort, configFile, join(logDir, `${stack.name}.${name}.log`));
  }

  get running(): boolean {
    return this.#child !== undefined && this.#child.exitCode === null && this.#child.signalCode === null;
  }

  /** Started and answering: not dead, not still starting. */
  get ready(): boolean {
    return this.running && this.#ready;
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  /** Starts the process and waits until it answers /healthz. */
  async start(): Promise<void> {
    const log = createWriteStream(this.#logFile, { flags: "a" });
    const child = spawn(process.execPath, [join(repoRoot, "bin", "kuvert.js"), "--config", this.#configFile, "start"], { stdio: ["ignore", "pipe", "pipe"] });
    child.stdout.pipe(log);
    child.stderr.pipe(log);
    this.#child = child;
    this.#ready = false;
    await waitFor(
      `${this.name} to answer /healthz`,
      async () => {
        if (child.exitCode !== null) throw new Error(`${this.name} exited with ${child.exitCode}; see ${this.#logFile}`);
        const res = await fetch(`http://127.0.0.1:${this.publicPort}/healthz`).catch(() => undefined);
        return res?.ok === true;
      },
      60_000,
    );
    this.#ready = true;
  }

  /** SIGKILL: no cleanup, leases left behind, as in a crash. */
  async kill(): Promise<void> {
    await this.#end("SIGKILL");
  }

  async stop(): Promise<void> {
    await this.#end("SIGTERM");
  }

  async #end(signal: NodeJS.Signals): Promise<void> {
    const child = this.#child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill(signal);
    await exited;
  }
}

/**
 * The stack's own Kuvert makes way for processes of the given names, each with listeners of its
 * own, behind the deployment's balancer (HAProxy), which takes the ports the registration and the
 * suite use. All started and answering.
 */
export async function processesBehindBalancer(stack: Stack, names: string[]): Promise<{ processes: KuvertProcess[]; balancer: Balancer }> {
  await stack.stopKuvert();
  const processes: KuvertProcess[] = [];
  for (const name of names) processes.push(await KuvertProcess.of(stack, name));
  await Promise.all(processes.map((p) => p.start()));
  const balancer = await startBalancer({
    workDir: stack.workDir,
    backends: processes.map((p) => ({ appservice: p.asPort, public: p.publicPort })),
    logPath: join(artifactsDir, "logs", `${stack.name}.haproxy.log`),
    ports: { appservice: stack.config.appservice.listener.port, public: stack.config.publicApi.listener.port },
  });
  await balancer.allUp();
  await homeserverReaches(stack, balancer);
  return { processes, balancer };
}

/**
 * Waits until the homeserver's transactions come through the balancer again. While nothing
 * answered on the appservice's port (the stack's Kuvert stopped, the balancer not started yet), a
 * transaction may have failed: the homeserver then counts the appservice as down and, until a retry
 * gets through, drops what is not a room event, to-device messages such as a clerk's room key
 * included (Synapse: "ephemeral events are dropped" in recovery mode, and its catch-up
 * transactions carry none; synapse/appservice/scheduler.py, get_oldest_unsent_txn). An event of the
 * bot's own (a room it makes for this and leaves) reaches Kuvert once the homeserver counts it up.
 */
async function homeserverReaches(stack: Stack, balancer: Balancer): Promise<void> {
  const passed = () => [...balancer.answered(200)].reduce((n, [key, count]) => (key.startsWith("appservice ") ? n + count : n), 0);
  const before = passed();
  const { room_id: roomId } = await stack.asBot<{ room_id: string }>("POST", "/_matrix/client/v3/createRoom", { preset: "private_chat", name: "balancer probe" });
  await waitFor("the homeserver's transactions to come through the balancer", () => passed() > before, 60_000, 100);
  await stack.asBot("POST", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/leave`, {});
}
