// Scanning while a document arrives. The bytes of an upload go to staging and to clamd at the
// same time, so the scan is (mostly) done when the document is accepted, instead of starting
// only after the whole file is staged (bench/README.md: for large files the two passes one
// after the other cost more than the scan itself).
//
// What this changes and what it does not: the verdict is clamd's verdict on exactly the bytes
// that were staged (the same chunks, counted; a verdict on a different number of bytes is
// thrown away). The pipeline still decides everything: it takes the verdict instead of
// scanning again, and nothing is delivered before a verdict either way. Any problem with the
// early scan (clamd down, slow, refusing) only means the pipeline scans the staged file as it
// always did.
//
// Most verdicts come within milliseconds of the last byte. The intake waits for them a little
// (settleMs) and, when the verdict settles the document (clean, clamd trusted, not an archive to
// walk), records it with the document in one transaction: no process scans it again, whichever
// delivers it. Any other verdict lives in this process: after a restart, or when another Kuvert
// process claims the document, it is scanned again from staging.
import { PassThrough } from "node:stream";
import { logger } from "../log.ts";
import type { Scanner, ScanVerdict } from "../scanning/scanner.ts";
import type { ChunkTap } from "../files/staging.ts";

const log = logger("prescan");

/** A verdict nobody took (the document went to another Kuvert process) is forgotten after this. */
const forgetAfterMs = 10 * 60_000;
/**
 * clamd reads an INSTREAM as fast as it can write its temporary file; when it does not take a
 * chunk for this long (all its threads busy, or stuck), the early scan is given up rather than
 * slowing the upload down: the pipeline scans the staged file later.
 */
const stallMs = 2_000;
/** How long the intake's answer waits for clamd's verdict after the last byte, so that it can record it. */
const settleMs = 2_000;

/** What decides whether a verdict reached while receiving is final (the scanning policy, policy.ts). */
export interface Settler {
  settle(early: ScanVerdict, head: Buffer): Promise<ScanVerdict | undefined>;
}

interface Pending {
  verdict: Promise<ScanVerdict | undefined>;
  timer: NodeJS.Timeout | undefined;
}

export class Prescans {
  readonly #scanner: Scanner;
  readonly #settler: Settler | undefined;
  readonly #pending = new Map<string, Pending>();

  /** Without `settler`, no verdict is final at intake: every one is kept for the pipeline. */
  constructor(scanner: Scanner, settler?: Settler) {
    this.#scanner = scanner;
    this.#settler = settler;
  }

  /** Starts a scan fed by the returned tap; `verdict` never rejects (undefined: no verdict). */
  start(): { tap: ChunkTap; verdict: Promise<ScanVerdict | undefined> } {
    const feed = new PassThrough({ highWaterMark: 1024 * 1024 });
    let settled = false;
    const verdict = this.#scanner.scan(feed, undefined).then(
      (v) => v,
      (err: unknown) => {
        log.debug({ err }, "no verdict while receiving; the pipeline scans the staged file");
        return undefined;
      },
    );
    const done = verdict.finally(() => {
      settled = true;
    });
    const tap: ChunkTap = {
      write(chunk) {
        if (settled || feed.destroyed) return undefined;
        if (feed.write(chunk)) return undefined;
        return new Promise<void>((resolve) => {
          const stalled = setTimeout(() => {
            feed.destroy(new Error(`the scanner took no data for ${stallMs} ms; the early scan is given up`));
          }, stallMs);
          const go = () => {
            clearTimeout(stalled);
            resolve();
          };
          feed.once("drain", go);
          feed.once("close", go);
          void done.then(go);
        });
      },
      end() {
        if (!feed.destroyed) feed.end();
      },
      abort() {
        // With an error, so that the scan ends at once instead of waiting for clamd.
        if (!feed.destroyed) feed.destroy(new Error("the upload ended without being staged"));
      },
    };
    return { tap, verdict };
  }

  /**
   * The final verdict on a document of `size` bytes starting with `head`, when the scan while
   * receiving settles it within settleMs; undefined otherwise (then `keep` the verdict).
   */
  async settle(verdict: Promise<ScanVerdict | undefined>, size: number, head: Buffer): Promise<ScanVerdict | undefined> {
    if (!this.#settler) return undefined;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<undefined>((resolve) => {
      timer = setTimeout(resolve, settleMs, undefined);
    });
    const early = await Promise.race([verdict, late]).finally(() => clearTimeout(timer));
    if (early?.bytes !== size) return undefined;
    return this.#settler.settle(early, head);
  }

  /** Keeps the verdict on document `id` (of `size` bytes) for the pipeline. */
  keep(id: string, size: number, verdict: Promise<ScanVerdict | undefined>): void {
    const entry: Pending = { verdict: verdict.then((v) => (v && v.bytes === size ? v : undefined)), timer: undefined };
    this.#pending.set(id, entry);
    void entry.verdict.then(() => {
      if (this.#pending.get(id) !== entry) return;
      entry.timer = setTimeout(() => this.#pending.delete(id), forgetAfterMs);
      entry.timer.unref();
    });
  }

  /** The verdict on document `id` reached while it arrived, if this process has one (waits for a scan still running). */
  async take(id: string): Promise<ScanVerdict | undefined> {
    const entry = this.#pending.get(id);
    if (!entry) return undefined;
    this.#pending.delete(id);
    clearTimeout(entry.timer);
    return entry.verdict;
  }
}
