// The scanner documents go through: clamd on the whole file, then Kuvert's archive policy on
// what is inside (archive.ts), and only while clamd is trusted (its canaries, canaries.ts).
// What cannot be scanned whole comes back as a verdict that is not clean, with `unscannable`.
import { randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import { open, rm } from "node:fs/promises";
import { join } from "node:path";
import type { KuvertConfig } from "../config/schema.ts";
import { logger } from "../log.ts";
import { archiveKind, ArchiveSniffer, headBytes, otherFormatError, UnscannableError, walkZip } from "./archive.ts";
import { sendCanaries, type CanaryReport } from "./canaries.ts";
import { ClamdScanner, ScannerUnavailableError, TooLargeToScanError, type Scanner, type ScanVerdict } from "./scanner.ts";

const log = logger("scanning");

type ScanningConfig = KuvertConfig["scanning"];

/** clamd answers, but would pass a canary: documents wait as while it is down, for another reason. */
export class ScannerUntrustedError extends ScannerUnavailableError {
  constructor(message: string) {
    super(message);
    this.name = "ScannerUntrustedError";
  }
}

/** Told once per problem (and day) when clamd would pass a canary: a sentence for staff. */
export type UnsafeScannerAlert = (alert: { key: string; problem: string }) => Promise<void>;

/**
 * Whether clamd catches the canaries. Checked at start, every scanning.canaryMinutes, and again
 * after clamd was unreachable (it may have come back with another configuration).
 */
export class CanaryWatch {
  readonly #config: ScanningConfig;
  #report: CanaryReport | undefined;
  #running: Promise<CanaryReport> | undefined;
  #stale = true;
  onUnsafe: UnsafeScannerAlert | undefined;

  constructor(config: ScanningConfig) {
    this.#config = config;
  }

  get report(): CanaryReport | undefined {
    return this.#report;
  }

  /** clamd was unreachable: check again before trusting it. */
  markStale(): void {
    this.#stale = true;
  }

  /** Sends the canaries (once at a time) and keeps the report. */
  check(): Promise<CanaryReport> {
    this.#running ??= sendCanaries(this.#config)
      .then(async (report) => {
        const was = this.#report;
        this.#report = report;
        this.#stale = false;
        if (report.passed.length > 0) {
          log.error({ answers: report.answers, passed: report.passed.map((p) => p.name) }, "clamd would pass canaries; documents wait");
          const problem = this.problem(report)!;
          const day = report.at.toISOString().slice(0, 10);
          const key = `scanner-unsafe:${report.passed.map((p) => p.name).join(",")}:${day}`;
          await this.onUnsafe?.({ key, problem }).catch((err: unknown) => log.warn({ err }, "staff could not be told about the scanner"));
        } else if (was && was.passed.length > 0) log.info({ answers: report.answers }, "clamd catches every canary again");
        return report;
      })
      .finally(() => {
        this.#running = undefined;
      });
    return this.#running;
  }

  /** A sentence for people, or undefined when clamd caught every canary. */
  problem(report: CanaryReport | undefined = this.#report): string | undefined {
    if (!report || report.passed.length === 0) return undefined;
    return `The virus scanner would let malware through, so documents wait: ${report.passed.map((p) => p.advice).join("; ")}.`;
  }

  /** Resolves when clamd is trusted; throws ScannerUnavailableError (documents wait) when it is not or cannot be asked. */
  async trusted(): Promise<void> {
    // A clamd that failed is asked again every minute, so that a fixed one is trusted soon.
    const age = this.#report ? Date.now() - this.#report.at.getTime() : Infinity;
    const due = this.#stale || age > (this.problem() ? 60_000 : this.#config.canaryMinutes * 60_000);
    const report = due ? await this.check() : this.#report!;
    const problem = this.problem(report);
    if (problem) throw new ScannerUntrustedError(problem);
  }
}

export class DocumentScanner implements Scanner {
  readonly clamd: ClamdScanner;
  readonly canaries: CanaryWatch;
  readonly #config: ScanningConfig;
  readonly #scratchDir: string;

  /** `scratchDir`: where archives found inside archives wait while they are walked (the staging area). */
  constructor(config: ScanningConfig, scratchDir: string) {
    this.#config = config;
    this.clamd = new ClamdScanner(config);
    this.canaries = new CanaryWatch(config);
    this.#scratchDir = scratchDir;
  }

  /** Scans a stream (a file being downloaded, an attachment): clamd on the whole, then every member of a ZIP. */
  async scan(stream: NodeJS.ReadableStream, size: number | undefined): Promise<ScanVerdict> {
    try {
      await this.canaries.trusted();
    } catch (err) {
      (stream as NodeJS.ReadableStream & { destroy?: () => void }).destroy?.();
      throw err;
    }
    const spool = join(this.#scratchDir, `.archive-${randomBytes(8).toString("hex")}`);
    const sniffer = new ArchiveSniffer("The file", spool, this.#config.archives.maxDepth);
    stream.on("error", (err: Error) => sniffer.destroy(err));
    stream.pipe(sniffer);
    try {
      let verdict: ScanVerdict;
      try {
        verdict = await this.#clamd(sniffer, size);
      } catch (err) {
        if (err instanceof UnscannableError) return err.verdict(0, 0);
        throw err;
      }
      if (!verdict.clean || sniffer.kind !== "zip") return verdict;
      await sniffer.spooled();
      return await this.#walk(spool, verdict);
    } finally {
      await sniffer.discard();
      await rm(spool, { force: true });
    }
  }

  /**
   * Scans a staged file. With `early` (clamd's verdict on the whole file, reached while it
   * arrived) only what is inside is scanned.
   */
  async scanFile(path: string, size: number, early?: ScanVerdict): Promise<ScanVerdict> {
    await this.canaries.trusted();
    const verdict = early ?? (await this.#clamd(createReadStream(path), size));
    if (!verdict.clean) return verdict;
    const file = await open(path, "r");
    let head: Buffer;
    try {
      const buffer = Buffer.alloc(headBytes);
      const { bytesRead } = await file.read(buffer, 0, headBytes, 0);
      head = buffer.subarray(0, bytesRead);
    } finally {
      await file.close();
    }
    return this.#byFormat(verdict, head) ?? this.#walk(path, verdict);
  }

  /**
   * The final verdict on a file, from clamd's verdict on its whole (reached while it arrived) and
   * its first bytes, when these settle it: clean, from a trusted clamd, and not an archive (a ZIP's
   * members are walked, which needs the file). Undefined otherwise: scanFile decides, later.
   */
  async settle(early: ScanVerdict, head: Buffer): Promise<ScanVerdict | undefined> {
    if (!early.clean) return undefined;
    try {
      await this.canaries.trusted();
    } catch (err) {
      if (err instanceof ScannerUnavailableError) return undefined;
      throw err;
    }
    const verdict = this.#byFormat(early, head);
    return verdict?.clean ? verdict : undefined;
  }

  /** A clean verdict on a whole file as its format leaves it: archives Kuvert cannot open are unscannable; undefined for a ZIP, whose members must be walked. */
  #byFormat(verdict: ScanVerdict, head: Buffer): ScanVerdict | undefined {
    const kind = archiveKind(head);
    if (kind?.kind === "other") return otherFormatError(kind.format, "The file").verdict(verdict.durationMs, verdict.bytes);
    if (kind?.kind === "zip") return undefined;
    return verdict;
  }

  async #clamd(stream: NodeJS.ReadableStream, size: number | undefined): Promise<ScanVerdict> {
    try {
      return await this.clamd.scan(stream, size);
    } catch (err) {
      if (err instanceof ScannerUnavailableError) this.canaries.markStale();
      // clamd took the whole stream but stopped at MaxFileSize or MaxScanSize while unpacking it
      // (AlertExceedsMax): the file is not too large, what is inside it is (a zip bomb).
      if (err instanceof TooLargeToScanError && err.limitedBy === "clamd" && size !== undefined && size <= this.#config.maxStreamBytes) {
        return new UnscannableError("size", `Unpacked, the file is larger than the virus scanner reads (${err.message}).`).verdict(0, size);
      }
      throw err;
    }
  }

  /** Walks a ZIP whose whole clamd found clean. */
  async #walk(path: string, whole: ScanVerdict): Promise<ScanVerdict> {
    try {
      const { verdict, walk } = await walkZip(path, {
        scanner: { scan: (s, n) => this.#clamd(s, n), ping: () => this.clamd.ping() },
        limits: this.#config.archives,
        maxMemberBytes: this.#config.maxStreamBytes,
        scratchDir: this.#scratchDir,
      });
      log.debug({ members: walk.members, scanned: walk.scanned, bytes: walk.bytes, durationMs: verdict.durationMs, clean: verdict.clean }, "archive walked");
      return { ...verdict, durationMs: whole.durationMs + verdict.durationMs };
    } catch (err) {
      if (err instanceof UnscannableError) {
        log.debug({ reason: err.reason }, "archive unscannable");
        return err.verdict(whole.durationMs, whole.bytes);
      }
      throw err;
    }
  }

  /** For readiness: clamd answers PING, and catches every canary. */
  async ping(): Promise<{ ok: boolean; detail: string }> {
    const pong = await this.clamd.ping();
    if (!pong.ok) {
      this.canaries.markStale();
      return pong;
    }
    let report = this.canaries.report;
    try {
      if (!report) report = await this.canaries.check();
      else void this.canaries.trusted().catch(() => undefined);
    } catch (err) {
      return { ok: false, detail: `${pong.detail}, but the canaries could not be sent (${(err as Error).message})` };
    }
    const problem = this.canaries.problem(report);
    if (problem) return { ok: false, detail: `${pong.detail}; ${problem}` };
    return { ok: true, detail: `${pong.detail} and catches every canary (checked ${report.at.toISOString()})` };
  }
}
