// Virus scanning with ClamAV's clamd over its INSTREAM command. Fails closed: only clamd's
// "OK" is clean; an unreachable, slow or confused clamd is ScannerUnavailableError (the
// document waits), and a file clamd will not take whole is TooLargeToScanError (rejected).
//
// Why not the `clamscan` package, though it is a dependency: in clamdscan mode its
// scanStream() speaks INSTREAM too, but (read in clamscan 2.4's index.js)
// - it ignores backpressure (`stream.on("data", d => transform.write(d))` and
//   `transform.on("data", d => socket.write(d))`), so a file that arrives faster than clamd
//   reads it piles up in memory — files must be streamed, never held whole;
// - a reply it does not recognise resolves as `{ isInfected: null }` instead of failing,
//   one truthiness check away from "clean";
// - an empty stream sends the terminator without the zINSTREAM command;
// - its timeout is the socket's idle timeout, on which it only half-closes the socket: against
//   a clamd that stopped reading, scanStream() with `timeout: 3000` was still pending after
//   15 s (and 100 MiB larger); it also logs with console.error.
// The protocol is small (man clamd: "zINSTREAM\0", chunks with a 4-byte big-endian length,
// a zero-length chunk to finish; one NUL-terminated reply), so Kuvert speaks it directly over
// node:net, with backpressure, an overall deadline and a strict reading of the reply.
import { createConnection, type Socket } from "node:net";
import { performance } from "node:perf_hooks";
import type { KuvertConfig } from "../config/schema.ts";
import { logger } from "../log.ts";

const log = logger("scanning");

type ScanningConfig = KuvertConfig["scanning"];

/** Why a file could not be scanned whole; such a file counts as not clean (KUVERT_UNSCANNABLE). */
export interface Unscannable {
  reason: "encrypted" | "depth" | "members" | "size" | "ratio" | "format" | "broken" | "scanner";
  /** A sentence for the sender: what was wrong and what to send instead. */
  message: string;
}

/**
 * `bytes`: how many bytes clamd was given and judged. Not clean: `signature` names what clamd
 * found; `member` the file inside an archive it was found in; `unscannable` says why the file
 * could not be scanned whole (the signature is then Kuvert.Unscannable.<reason> or clamd's own).
 */
export type ScanVerdict = { clean: true; durationMs: number; bytes: number } | { clean: false; signature: string; durationMs: number; bytes: number; member?: string; unscannable?: Unscannable };

/** clamd could not be reached or did not answer in time: try again later (documents wait). */
export class ScannerUnavailableError extends Error {
  readonly retryable = true;
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ScannerUnavailableError";
  }
}

/** The file is larger than clamd scans (StreamMaxLength): it is rejected, never passed unscanned. */
export class TooLargeToScanError extends Error {
  /** The limit Kuvert knows of: scanning.maxStreamBytes. When `limitedBy` is "clamd", clamd's own limit is lower. */
  readonly limitBytes: number;
  /** "maxStreamBytes": refused before contacting clamd; "clamd": clamd refused it (StreamMaxLength, MaxFileSize or MaxScanSize below maxStreamBytes). */
  readonly limitedBy: "maxStreamBytes" | "clamd";
  constructor(message: string, limitBytes: number, limitedBy: "maxStreamBytes" | "clamd") {
    super(message);
    this.name = "TooLargeToScanError";
    this.limitBytes = limitBytes;
    this.limitedBy = limitedBy;
  }
}

export interface Scanner {
  /**
   * Scans a stream of `size` bytes (known beforehand, e.g. from staging; undefined while the
   * bytes are still arriving: the verdict's `bytes` then says how many were judged). Fails
   * closed. The scan consumes the stream; when it fails or is refused, the stream is destroyed.
   */
  scan(stream: NodeJS.ReadableStream, size: number | undefined): Promise<ScanVerdict>;
  /** For readiness: clamd answers PING. */
  ping(): Promise<{ ok: boolean; detail: string }>;
}

/** clamd takes chunks of any size up to its limit; large chunks are cut so that no single write is huge. */
const maxChunkBytes = 1024 * 1024;
/** A chunk length is a 32-bit unsigned integer. */
const maxInstreamBytes = 0xffff_ffff;
/** clamd's replies are one short line; anything longer is not clamd talking. */
const maxReplyBytes = 4096;
/** How long a size probe waits for clamd to refuse a chunk header before taking silence for "accepted". */
const probeWaitMs = 1_000;
/** Readiness checks must answer fast whatever the scan timeout. */
const pingTimeoutMs = 5_000;

export type ClamdReply = { kind: "clean" } | { kind: "infected"; signature: string } | { kind: "unscannable"; signature: string; unscannable: Unscannable } | { kind: "tooLarge"; reply: string } | { kind: "unexpected"; reply: string };

/**
 * Reads one clamd reply to INSTREAM. Only "stream: OK" is clean. Signatures that say clamd
 * stopped at one of its size limits (AlertExceedsMax) mean "too large", not "infected"; those
 * that say it could not read something (AlertEncrypted, its other limits) mean "unscannable".
 */
export function readScanReply(raw: string): ClamdReply {
  const reply = raw.replace(/\0+$/, "").trim();
  if (reply === "stream: OK") return { kind: "clean" };
  const found = /^stream: (\S(?:.*\S)?) FOUND$/.exec(reply);
  if (found?.[1]) {
    const signature = found[1];
    if (/^Heuristics\.Limits\.Exceeded\.Max(FileSize|ScanSize)\b/.test(signature)) return { kind: "tooLarge", reply };
    if (/^Heuristics\.Encrypted\./.test(signature)) {
      return { kind: "unscannable", signature, unscannable: { reason: "encrypted", message: `The file is or contains something password-protected (${signature}), so the virus scanner cannot read it. Send it without a password.` } };
    }
    if (/^Heuristics\.Limits\.Exceeded\./.test(signature)) {
      return { kind: "unscannable", signature, unscannable: { reason: "scanner", message: `The virus scanner could not read the file to its end (${signature}): it is packed too deeply or holds too many files.` } };
    }
    return { kind: "infected", signature };
  }
  if (/^INSTREAM size limit exceeded\b/.test(reply)) return { kind: "tooLarge", reply };
  return { kind: "unexpected", reply };
}

function frameHeader(length: number): Buffer {
  const header = Buffer.alloc(4);
  header.writeUInt32BE(length, 0);
  return header;
}

function destroyStream(stream: NodeJS.ReadableStream): void {
  const destroy = (stream as { destroy?: unknown }).destroy;
  if (typeof destroy === "function") (destroy as () => void).call(stream);
}

function roundMs(ms: number): number {
  return Math.round(ms * 10) / 10;
}

export class ClamdScanner implements Scanner {
  readonly #config: ScanningConfig;

  constructor(config: ScanningConfig) {
    this.#config = config;
  }

  /** Where clamd is, for messages: the socket path or host:port. */
  get address(): string {
    return this.#config.socket ? `socket ${this.#config.socket}` : `${this.#config.host}:${this.#config.port}`;
  }

  #connect(): Socket {
    const { socket, host, port } = this.#config;
    return socket ? createConnection({ path: socket }) : createConnection({ host, port });
  }

  async scan(stream: NodeJS.ReadableStream, size: number | undefined): Promise<ScanVerdict> {
    const limit = Math.min(this.#config.maxStreamBytes, maxInstreamBytes);
    if (size !== undefined && (!Number.isSafeInteger(size) || size < 0)) {
      destroyStream(stream);
      throw new TypeError(`scan: size must be a byte count, got ${size}`);
    }
    if (size !== undefined && size > limit) {
      destroyStream(stream);
      log.debug({ bytes: size, limitBytes: limit }, "file too large to scan, clamd not asked");
      throw new TooLargeToScanError(`The file has ${size} bytes; the virus scanner takes at most ${limit} bytes.`, limit, "maxStreamBytes");
    }

    const started = performance.now();
    const timeoutMs = this.#config.timeoutSeconds * 1000;
    const conn = this.#connect();
    let connected = false;
    // "probing": the connection broke before a verdict and clamd is being asked why.
    let state: "scanning" | "probing" | "settled" = "scanning";
    let sent = 0;
    // The terminator went out: clamd has the whole file.
    let whole = false;

    const outcome = new Promise<ScanVerdict>((resolve, reject) => {
      const finish = (result: { verdict: ScanVerdict } | { error: Error }) => {
        if (state === "settled") return;
        state = "settled";
        clearTimeout(timer);
        conn.destroy();
        if ("error" in result) {
          destroyStream(stream);
          log.debug({ bytes: size, durationMs: roundMs(performance.now() - started), reason: result.error.message }, "no verdict");
          reject(result.error);
        } else resolve(result.verdict);
      };
      const unavailable = (why: string, cause?: unknown) => finish({ error: new ScannerUnavailableError(`The virus scanner (clamd at ${this.address}) ${why}.`, cause === undefined ? undefined : { cause }) });

      const timer = setTimeout(() => unavailable(`did not answer within ${this.#config.timeoutSeconds} s`), timeoutMs);

      let reply = Buffer.alloc(0);
      const settleReply = (text: string) => this.#settleReply(text, size, sent, whole, started, finish, unavailable);
      // clamd refuses a stream over StreamMaxLength with a reply and closes the connection at
      // once, while Kuvert is still sending: the write then fails (EPIPE, ECONNRESET) and the
      // reply can be lost with the socket. So a connection that breaks without a reply does
      // not decide anything by itself: a size probe asks clamd whether it takes `size` bytes.
      const broken = (why: string, cause?: unknown) => {
        if (state !== "scanning") return;
        if (reply.length > 0) return settleReply(reply.toString("utf8"));
        if (!connected) return unavailable(why, cause);
        state = "probing";
        conn.destroy();
        probeStreamLimit(this.#config, size ?? sent, probeWaitMs).then(
          (answer) => {
            if (state !== "probing") return;
            state = "scanning";
            if (answer === "refused") settleReply("INSTREAM size limit exceeded. ERROR");
            else unavailable(why, cause);
          },
          (err: unknown) => {
            if (state !== "probing") return;
            state = "scanning";
            unavailable(`${why}, then could not be reached`, err);
          },
        );
      };

      conn.on("data", (data: Buffer) => {
        reply = Buffer.concat([reply, data]);
        const end = reply.indexOf(0);
        if (end < 0 && reply.length <= maxReplyBytes) return;
        settleReply(reply.subarray(0, end < 0 ? maxReplyBytes : end).toString("utf8"));
      });
      // clamd ends the connection after its reply; a reply without its NUL still counts.
      conn.on("end", () => broken("closed the connection without a verdict"));
      conn.on("close", () => broken("closed the connection without a verdict"));
      conn.on("error", (err: NodeJS.ErrnoException) => broken(connected ? `broke the connection (${err.code ?? err.message})` : `could not be reached (${err.code ?? err.message})`, err));
      // Once the scan stopped reading (a verdict, or probing a broken connection), the stream's
      // own end (an AbortError when the reading loop leaves it early) decides nothing.
      stream.on("error", (err: Error) => {
        if (state === "scanning") finish({ error: err });
      });

      conn.once("connect", () => {
        connected = true;
        this.#send(
          conn,
          stream,
          size,
          limit,
          (n, end) => ((sent = n), (whole = end)),
          () => state !== "scanning",
        ).then(
          (problem) => {
            if (problem) finish({ error: problem });
          },
          (err: unknown) => {
            if (state === "scanning") finish({ error: err instanceof Error ? err : new Error(String(err)) });
          },
        );
      });
    });
    return outcome;
  }

  /** Streams the file to clamd with backpressure; answers an error that ends the scan, or nothing when the terminator went out. */
  async #send(conn: Socket, stream: NodeJS.ReadableStream, size: number | undefined, limit: number, progress: (sent: number, whole: boolean) => void, stopped: () => boolean): Promise<Error | undefined> {
    const write = (data: Buffer): Promise<void> | undefined => {
      if (conn.write(data)) return undefined;
      return new Promise<void>((resolve) => {
        const done = () => {
          conn.off("drain", done);
          conn.off("close", done);
          resolve();
        };
        conn.on("drain", done);
        conn.on("close", done);
      });
    };

    await write(Buffer.from("zINSTREAM\0", "latin1"));
    let sent = 0;
    for await (const piece of stream) {
      if (stopped()) return undefined;
      const chunk = Buffer.isBuffer(piece) ? piece : Buffer.from(piece);
      if (sent + chunk.length > (size ?? limit)) {
        if (sent + chunk.length > limit) return new TooLargeToScanError(`The file is larger than announced and than the ${limit} bytes the virus scanner takes.`, limit, "maxStreamBytes");
        return new Error(`The file is larger than the ${size} bytes announced; it was not scanned.`);
      }
      for (let offset = 0; offset < chunk.length; offset += maxChunkBytes) {
        const part = chunk.subarray(offset, Math.min(offset + maxChunkBytes, chunk.length));
        // The length and its bytes in one system call (writev), not two.
        conn.cork();
        conn.write(frameHeader(part.length));
        const pending = write(part);
        conn.uncork();
        await pending;
        sent += part.length;
        progress(sent, false);
        if (stopped()) return undefined;
      }
    }
    if (stopped()) return undefined;
    if (size !== undefined && sent !== size) return new Error(`The file had ${sent} bytes, not the ${size} announced; it was not scanned.`);
    // The zero-length chunk ends the stream; clamd scans and answers, then closes.
    progress(sent, true);
    await write(frameHeader(0));
    return undefined;
  }

  #settleReply(text: string, size: number | undefined, sent: number, whole: boolean, started: number, finish: (result: { verdict: ScanVerdict } | { error: Error }) => void, unavailable: (why: string) => void): void {
    const durationMs = roundMs(performance.now() - started);
    const reply = readScanReply(text);
    switch (reply.kind) {
      case "clean":
        if (!whole || (size !== undefined && sent !== size)) return unavailable(`answered OK before it had the whole file (${sent} of ${size ?? "?"} bytes)`);
        log.debug({ clean: true, bytes: sent, durationMs }, "scanned");
        return finish({ verdict: { clean: true, durationMs, bytes: sent } });
      case "infected":
        log.debug({ clean: false, signature: reply.signature, bytes: sent, durationMs }, "scanned");
        return finish({ verdict: { clean: false, signature: reply.signature, durationMs, bytes: sent } });
      case "unscannable":
        log.debug({ clean: false, signature: reply.signature, bytes: sent, durationMs }, "scanned: unscannable");
        return finish({ verdict: { clean: false, signature: reply.signature, durationMs, bytes: sent, unscannable: reply.unscannable } });
      case "tooLarge": {
        const limit = this.#config.maxStreamBytes;
        log.warn({ bytes: size ?? sent, limitBytes: limit, reply: reply.reply }, "clamd refused a file within scanning.maxStreamBytes: set clamd's StreamMaxLength, MaxFileSize and MaxScanSize to at least scanning.maxStreamBytes");
        return finish({ error: new TooLargeToScanError(`The file has ${size ?? `more than ${sent}`} bytes; the virus scanner refused it as too large (${reply.reply}).`, limit, "clamd") });
      }
      case "unexpected":
        return unavailable(`gave no verdict (${JSON.stringify(reply.reply.slice(0, 200))})`);
    }
  }

  async ping(): Promise<{ ok: boolean; detail: string }> {
    const conn = this.#connect();
    const timeoutMs = Math.min(this.#config.timeoutSeconds * 1000, pingTimeoutMs);
    const address = this.address;
    return new Promise((resolve) => {
      let reply = "";
      let done = false;
      const finish = (ok: boolean, detail: string) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        conn.destroy();
        resolve({ ok, detail });
      };
      const timer = setTimeout(() => finish(false, `clamd at ${address} did not answer PING within ${timeoutMs} ms`), timeoutMs);
      conn.on("error", (err: NodeJS.ErrnoException) => finish(false, `clamd at ${address} could not be reached (${err.code ?? err.message})`));
      conn.on("connect", () => conn.write("zPING\0"));
      const answer = () => {
        const text = reply.replace(/\0[\s\S]*$/, "").trim();
        if (text === "PONG") finish(true, `clamd at ${address} answers PING`);
        else finish(false, `clamd at ${address} answered PING with ${JSON.stringify(text.slice(0, 200))}`);
      };
      conn.on("data", (data: Buffer) => {
        reply += data.toString("latin1");
        if (reply.includes("\0") || reply.length > maxReplyBytes) answer();
      });
      conn.on("end", answer);
      conn.on("close", answer);
    });
  }
}

/**
 * Asks clamd whether it takes streams of scanning.maxStreamBytes, cheaply: clamd checks each
 * INSTREAM chunk's announced length against StreamMaxLength before it reads the chunk, so one
 * chunk header of maxStreamBytes is refused at once when clamd's limit is lower, and met with
 * silence (clamd waits for the data) when it is not. No file data is sent. clamd's
 * configuration itself cannot be queried (VERSIONCOMMANDS lists commands, STATS has no limits).
 * With `clamdMaxStream` (bytes, e.g. read from clamd.conf) it compares without asking clamd.
 *
 * Answers a sentence for the operator when the limits do not fit, or undefined when they do.
 * MaxFileSize and MaxScanSize cannot be probed this way: keep them at least as large, or set
 * AlertExceedsMax, or clamd answers OK for files it did not scan to the end.
 * Throws ScannerUnavailableError when clamd cannot be asked.
 */
export async function clamdStreamLimitProblem(config: ScanningConfig, clamdMaxStream?: number, opts: { waitMs?: number } = {}): Promise<string | undefined> {
  const wanted = config.maxStreamBytes;
  const advice = `set clamd's StreamMaxLength (and MaxFileSize, MaxScanSize) to at least ${wanted} bytes, or lower scanning.maxStreamBytes`;
  if (wanted > maxInstreamBytes) return `scanning.maxStreamBytes is ${wanted} bytes, but clamd takes no stream over ${maxInstreamBytes} bytes: lower scanning.maxStreamBytes.`;
  if (clamdMaxStream !== undefined) {
    return clamdMaxStream < wanted ? `clamd's StreamMaxLength (${clamdMaxStream} bytes) is below scanning.maxStreamBytes (${wanted} bytes): ${advice}.` : undefined;
  }
  const answer = await probeStreamLimit(config, wanted, opts.waitMs ?? probeWaitMs);
  if (answer === "accepted") return undefined;
  const address = config.socket ? `socket ${config.socket}` : `${config.host}:${config.port}`;
  return `clamd at ${address} refuses streams of scanning.maxStreamBytes (${wanted} bytes): ${advice}.`;
}

/**
 * Sends "zINSTREAM\0" and one chunk header of `bytes`, no data: clamd refuses the header at once
 * when `bytes` is over its StreamMaxLength, and otherwise waits for the data in silence.
 */
function probeStreamLimit(config: ScanningConfig, bytes: number, waitMs: number): Promise<"refused" | "accepted"> {
  const address = config.socket ? `socket ${config.socket}` : `${config.host}:${config.port}`;
  const conn = config.socket ? createConnection({ path: config.socket }) : createConnection({ host: config.host, port: config.port });
  return new Promise((resolve, reject) => {
    let reply = "";
    let done = false;
    let silence: NodeJS.Timeout | undefined;
    const finish = (result: { answer: "refused" | "accepted" } | { error: Error }) => {
      if (done) return;
      done = true;
      clearTimeout(deadline);
      clearTimeout(silence);
      conn.destroy();
      if ("error" in result) reject(result.error);
      else resolve(result.answer);
    };
    const unavailable = (why: string, cause?: unknown) => finish({ error: new ScannerUnavailableError(`The virus scanner (clamd at ${address}) ${why}.`, cause === undefined ? undefined : { cause }) });
    const deadline = setTimeout(() => unavailable(`did not accept a connection within ${config.timeoutSeconds} s`), config.timeoutSeconds * 1000);
    const answer = () => {
      const text = reply.replace(/\0[\s\S]*$/, "").trim();
      if (/^INSTREAM size limit exceeded\b/.test(text)) finish({ answer: "refused" });
      else unavailable(`answered a size probe with ${JSON.stringify(text.slice(0, 200))}`);
    };
    conn.on("error", (err: NodeJS.ErrnoException) => unavailable(`could not be reached (${err.code ?? err.message})`, err));
    conn.on("data", (data: Buffer) => {
      reply += data.toString("latin1");
      if (reply.includes("\0") || reply.length > maxReplyBytes) answer();
    });
    conn.on("end", answer);
    conn.on("connect", () => {
      clearTimeout(deadline);
      conn.write(Buffer.concat([Buffer.from("zINSTREAM\0", "latin1"), frameHeader(bytes)]));
      // clamd answers a refused chunk header at once; silence means it waits for the data.
      silence = setTimeout(() => finish({ answer: "accepted" }), waitMs);
    });
  });
}
