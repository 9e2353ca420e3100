// A real clamd for the tests: a temporary directory with an offline signature database
// that detects the EICAR test file (freshclam cannot download anything here), a clamd.conf
// with the deployment's settings (deploy/clamav/clamd.conf, below its paths) and paths of our
// own, clamd in the background on a free TCP port and a local socket. Stopped by its PID and
// waited for: PID 1 here does not reap orphans.
import { spawn, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createConnection } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { crc32 } from "node:zlib";
import { freePort } from "./ports.ts";

/**
 * The EICAR anti-virus test file (68 bytes). Put together from parts so that this source
 * file itself does not contain the string in one piece and no scanner flags the repository.
 */
export const EICAR: Buffer = Buffer.from(["X5O!P%@AP[4\\PZX54(P^)7CC)7}$", "EICAR-STANDARD-", "ANTIVIRUS-", "TEST-FILE!$H+H*"].join(""), "latin1");

/** The names of the test signatures; clamd reports them with a `.UNOFFICIAL` suffix. */
export const EICAR_FILE_SIGNATURE = "Eicar-Test-Signature.MD5";
export const EICAR_BODY_SIGNATURE = "Eicar-Test-Signature";

export interface Clamd {
  host: string;
  port: number;
  /** Path of clamd's local socket. */
  socket: string;
  dir: string;
  /** Stops clamd and deletes its directory. */
  stop(): Promise<void>;
  /** Stops the process, keeps the directory (to test what happens while the scanner is down). */
  pause(): Promise<void>;
  /** Starts clamd again on the same port and socket and waits until it answers PING. */
  resume(): Promise<void>;
}

const clamdBin = existsSync("/usr/sbin/clamd") ? "/usr/sbin/clamd" : "clamd";

/** The one clamd configuration, shared with the deployment: deploy/clamav/clamd.conf. */
export const deployedClamdConf = join(import.meta.dirname, "..", "..", "deploy", "clamav", "clamd.conf");
/** Settings of the deployment's clamd.conf that name its paths and sockets; the tests set their own. */
const placeSettings = new Set(["LogTime", "LogFile", "PidFile", "LocalSocket", "TCPSocket", "TCPAddr", "User", "DatabaseDirectory"]);

/** The deployment's clamd settings (deploy/clamav/clamd.conf) without its paths, in order. */
export function clamdSettings(): Map<string, string> {
  const settings = new Map<string, string>();
  for (const raw of readFileSync(deployedClamdConf, "utf8").split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const [key, ...value] = line.split(/\s+/);
    if (!placeSettings.has(key!)) settings.set(key!, value.join(" "));
  }
  return settings;
}

/** A clamd size ("100M", "400K", "1048576") in bytes. */
export function clamdBytes(size: string): number {
  const m = /^(\d+)([KkMm]?)$/.exec(size);
  if (!m) throw new Error(`not a clamd size: ${size}`);
  return Number(m[1]) * (m[2] === "" ? 1 : m[2]!.toUpperCase() === "K" ? 1024 : 1024 * 1024);
}

/**
 * Starts clamd with the deployment's settings. `streamMaxLength` replaces clamd's
 * StreamMaxLength (e.g. "1M", "300M"); MaxFileSize follows it, and MaxScanSize when it is
 * smaller, so whatever clamd accepts it also scans whole. `settings` replaces single settings,
 * and removes those set to null (a clamd configured unsafely, for the canaries).
 */
export async function startClamd(opts: { streamMaxLength?: string; settings?: Record<string, string | null> } = {}): Promise<Clamd> {
  const dir = mkdtempSync(join(tmpdir(), "kuvert-clamd-"));
  const db = join(dir, "db");
  const tmp = join(dir, "tmp");
  mkdirSync(db);
  mkdirSync(tmp);
  writeDatabase(db);

  const host = "127.0.0.1";
  const port = await freePort();
  const socket = join(dir, "clamd.sock");
  const settings = clamdSettings();
  if (opts.streamMaxLength) {
    settings.set("StreamMaxLength", opts.streamMaxLength);
    settings.set("MaxFileSize", opts.streamMaxLength);
    if (clamdBytes(settings.get("MaxScanSize") ?? "0") < clamdBytes(opts.streamMaxLength)) settings.set("MaxScanSize", opts.streamMaxLength);
  }
  for (const [key, value] of Object.entries(opts.settings ?? {})) {
    if (value === null) settings.delete(key);
    else settings.set(key, value);
  }
  const conf = join(dir, "clamd.conf");
  writeFileSync(
    conf,
    [
      "Foreground yes",
      `DatabaseDirectory ${db}`,
      `TemporaryDirectory ${tmp}`,
      `LogFile ${join(dir, "clamd.log")}`,
      "LogTime yes",
      `LocalSocket ${socket}`,
      "FixStaleSocket yes",
      `TCPSocket ${port}`,
      `TCPAddr ${host}`,
      "MaxThreads 4",
      ...[...settings].map(([key, value]) => `${key} ${value}`),
      "",
    ].join("\n"),
  );

  let child: { process: ChildProcess; exited: Promise<void> } | undefined;
  // A process that ends without stop() (a crash, process.exit) leaves neither clamd nor its folder behind.
  const killOnExit = () => {
    child?.process.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  };
  process.once("exit", killOnExit);

  const start = async () => {
    const out = openSync(join(dir, "clamd.out"), "a");
    let started: ChildProcess;
    try {
      started = spawn(clamdBin, [`--config-file=${conf}`], { stdio: ["ignore", out, out] });
    } finally {
      closeSync(out);
    }
    started.unref();
    let exitedWith: string | undefined;
    const exited = new Promise<void>((resolve) => {
      started.once("exit", (code, signal) => {
        exitedWith = `exited with ${signal ?? code}`;
        resolve();
      });
      started.once("error", (err) => {
        exitedWith = err.message;
        resolve();
      });
    });
    child = { process: started, exited };
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (await answersPing(host, port)) return;
      if (exitedWith !== undefined || Date.now() > deadline) {
        const log = [join(dir, "clamd.out"), join(dir, "clamd.log")].map((f) => (existsSync(f) ? readFileSync(f, "utf8") : "")).join("\n");
        const why = exitedWith ?? "no PONG within 60 s";
        await halt();
        throw new Error(`clamd did not start (${why}):\n${log.slice(-2000)}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  };

  /** Stops clamd by its PID and waits until it is gone (and reaped). */
  const halt = async () => {
    const running = child;
    child = undefined;
    if (!running) return;
    running.process.kill("SIGTERM");
    const timer = setTimeout(() => running.process.kill("SIGKILL"), 5_000);
    await running.exited;
    clearTimeout(timer);
  };

  try {
    await start();
  } catch (err) {
    process.removeListener("exit", killOnExit);
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    host,
    port,
    socket,
    dir,
    async stop() {
      try {
        await halt();
      } finally {
        process.removeListener("exit", killOnExit);
        rmSync(dir, { recursive: true, force: true });
      }
    },
    pause: halt,
    async resume() {
      if (child) return;
      await start();
    },
  };
}

/** Writes a database that detects EICAR by its MD5 (as `sigtool --md5` prints it) and anywhere inside other files. */
function writeDatabase(db: string): void {
  const md5 = createHash("md5").update(EICAR).digest("hex");
  writeFileSync(join(db, "kuvert-test.hdb"), `${md5}:${EICAR.length}:${EICAR_FILE_SIGNATURE}\n`);
  writeFileSync(join(db, "kuvert-test.ndb"), `${EICAR_BODY_SIGNATURE}:0:*:${EICAR.toString("hex")}\n`);
}

/** True when clamd at host:port answers zPING with PONG. */
function answersPing(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const conn = createConnection({ host, port });
    let reply = "";
    const done = (ok: boolean) => {
      conn.destroy();
      resolve(ok);
    };
    conn.setTimeout(2_000, () => done(false));
    conn.on("error", () => done(false));
    conn.on("connect", () => conn.write("zPING\0"));
    conn.on("data", (d: Buffer) => {
      reply += d.toString("latin1");
      if (reply.includes("\0")) done(reply.startsWith("PONG"));
    });
    conn.on("end", () => done(reply.startsWith("PONG")));
  });
}

/** A minimal ZIP archive (one stored, uncompressed entry), built in code. */
export function zipContaining(name: string, content: Buffer): Buffer {
  const fileName = Buffer.from(name, "utf8");
  const crc = crc32(content);
  const dosTime = 0;
  const dosDate = ((2024 - 1980) << 9) | (1 << 5) | 1;

  const local = Buffer.alloc(30);
  local.writeUInt32LE(0x04034b50, 0); // local file header
  local.writeUInt16LE(20, 4); // version needed
  local.writeUInt16LE(0x0800, 6); // flags: UTF-8 name
  local.writeUInt16LE(0, 8); // method: stored
  local.writeUInt16LE(dosTime, 10);
  local.writeUInt16LE(dosDate, 12);
  local.writeUInt32LE(crc, 14);
  local.writeUInt32LE(content.length, 18); // compressed size
  local.writeUInt32LE(content.length, 22); // uncompressed size
  local.writeUInt16LE(fileName.length, 26);
  local.writeUInt16LE(0, 28); // extra length

  const central = Buffer.alloc(46);
  central.writeUInt32LE(0x02014b50, 0); // central directory header
  central.writeUInt16LE(20, 4); // version made by
  central.writeUInt16LE(20, 6); // version needed
  central.writeUInt16LE(0x0800, 8);
  central.writeUInt16LE(0, 10);
  central.writeUInt16LE(dosTime, 12);
  central.writeUInt16LE(dosDate, 14);
  central.writeUInt32LE(crc, 16);
  central.writeUInt32LE(content.length, 20);
  central.writeUInt32LE(content.length, 24);
  central.writeUInt16LE(fileName.length, 28);
  // extra length, comment length, disk number, internal and external attributes: 0
  central.writeUInt32LE(0, 42); // offset of the local header

  const centralOffset = local.length + fileName.length + content.length;
  const centralSize = central.length + fileName.length;
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0); // end of central directory
  end.writeUInt16LE(1, 8); // entries on this disk
  end.writeUInt16LE(1, 10); // entries in all
  end.writeUInt32LE(centralSize, 12);
  end.writeUInt32LE(centralOffset, 16);

  return Buffer.concat([local, fileName, content, central, fileName, end]);
}
