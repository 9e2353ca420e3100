// Intake paced to delivery. A burst of uploads is taken in (received, scanned, staged, recorded)
// faster than a homeserver delivers it, and the rest waits in staging. On a machine the
// homeserver shares, that intake takes the CPU the homeserver needs: on two cores, Synapse got
// 40–57 % of its one core while a burst arrived and delivered the rest alone afterwards, with
// the second core idle (bench/README.md). So while `backlog` documents wait for delivery, a new
// upload waits before its bytes are read until deliveries bring the number down; the documents
// then arrive at the pace they leave, and each waits less in staging.
//
// It never waits for a homeserver that takes nothing: when this process finished no document for
// `stallMs`, uploads are taken at once, as without pacing, and the queue keeps them until the
// homeserver is back. Nor does one upload wait longer than `maxWaitMs`, whatever the pace (many
// senders at once, a homeserver slowly taking large files): well within any HTTP timeout. Every process's worker claims from the one queue, so a process that takes
// uploads also delivers some of them, and its own deliveries show whether delivery moves.
import { logger } from "../log.ts";

const log = logger("documents");

export interface PacingOptions {
  /** Documents waiting for delivery (all processes) from which uploads wait; 0: they never do. */
  backlog: number;
  /** How often the number is read again while uploads wait (and at most, while they do not). */
  refreshMs?: number;
  /** With no document finished for this long, uploads stop waiting. */
  stallMs?: number;
  /** No upload waits longer than this. */
  maxWaitMs?: number;
}

export class IntakePacer {
  readonly #read: () => Promise<number>;
  readonly #backlog: number;
  readonly #refreshMs: number;
  readonly #stallMs: number;
  readonly #maxWaitMs: number;
  /**
   * The number as last read, plus what was taken in and less what finished since. A read does not
   * see uploads still being received, so it may let in up to that many more: near, not exact.
   */
  #estimate = 0;
  #readAt = -Infinity;
  #reading: Promise<void> | undefined;
  #lastFinished = performance.now();
  #failing = false;
  readonly #waiting: (() => void)[] = [];
  #timer: NodeJS.Timeout | undefined;

  /** `read` tells how many documents wait for delivery now, in every process. */
  constructor(read: () => Promise<number>, options: PacingOptions) {
    this.#read = read;
    this.#backlog = options.backlog;
    this.#refreshMs = options.refreshMs ?? 250;
    this.#stallMs = options.stallMs ?? 3000;
    this.#maxWaitMs = options.maxWaitMs ?? 30_000;
  }

  /** Resolves when an upload may be read, first come first in; with the milliseconds it waited. */
  async admit(): Promise<number> {
    if (this.#backlog === 0) return 0;
    const started = performance.now();
    await this.#refresh();
    if (this.#waiting.length === 0 && this.#open()) {
      this.#estimate++;
      return 0;
    }
    await new Promise<void>((resolve) => {
      const waiter = () => {
        clearTimeout(giveUp);
        resolve();
      };
      const giveUp = setTimeout(() => {
        this.#waiting.splice(this.#waiting.indexOf(waiter), 1);
        this.#estimate++;
        resolve();
      }, this.#maxWaitMs);
      this.#waiting.push(waiter);
      this.#watch();
    });
    return performance.now() - started;
  }

  /** A document of this process's worker is finished (delivered, rejected or held): one more may come in. */
  finished(): void {
    this.#estimate = Math.max(0, this.#estimate - 1);
    this.#lastFinished = performance.now();
    this.#letIn();
  }

  #letIn(): void {
    while (this.#waiting.length > 0 && this.#open()) {
      this.#estimate++;
      this.#waiting.shift()!();
    }
  }

  /** While uploads wait: reads the number again every refreshMs, and sees a stall. */
  #watch(): void {
    if (this.#timer) return;
    this.#timer = setTimeout(() => {
      void this.#refresh().then(() => {
        this.#timer = undefined;
        this.#letIn();
        if (this.#waiting.length > 0) this.#watch();
      });
    }, this.#refreshMs);
    this.#timer.unref();
  }

  #open(): boolean {
    return this.#estimate < this.#backlog || performance.now() - this.#lastFinished >= this.#stallMs;
  }

  async #refresh(): Promise<void> {
    if (performance.now() - this.#readAt < this.#refreshMs) return;
    this.#reading ??= this.#read()
      .then(
        (n) => {
          this.#estimate = n;
          this.#failing = false;
        },
        (err: unknown) => {
          // The estimate stays; the database's trouble shows where the upload is recorded.
          if (!this.#failing) log.warn({ err }, "reading the delivery backlog failed; uploads are paced by the last number read");
          this.#failing = true;
        },
      )
      .finally(() => {
        this.#readAt = performance.now();
        this.#reading = undefined;
      });
    await this.#reading;
  }
}
