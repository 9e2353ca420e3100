// Records finished work several items per transaction. A worker's slot is a request in flight
// toward the homeserver, not a database write: a handler hands its finished item over with
// add() and its slot is free at once (unless the writer has fallen behind: then the handler
// waits for its batch, and the queue slows down to what the database takes). The item's row
// stays leased until its batch is committed; when a write fails, the lease runs out, another
// attempt finds its work done (transaction ids, recorded media) and hands it over again. A
// caller that must not answer before its item is committed (an upload's 202) waits with record().
import type { Database, Queryable } from "../db/database.ts";
import { Worker, type QueueRow, type WorkerOptions } from "./queue.ts";

export interface BatchWriterOptions<T> {
  db: Database;
  /** Writes one batch inside its transaction. */
  write(tx: Queryable, items: T[]): Promise<void>;
  /** After a batch is committed (outside its transaction), e.g. removing what it no longer needs; reports its own errors. */
  written?(items: T[]): Promise<void>;
  /** Told of an item handed over with add() whose write failed when nobody waits for it. */
  failed?(item: T, err: unknown): void;
  /** Most items in one transaction; beyond this many waiting, handlers wait for their batch. */
  maxBatch: number;
  /**
   * Holds a batch open up to `ms` for more items while `while()` says more are coming (e.g.
   * other documents still in the worker's hands); without it, a batch is what arrived while the
   * previous one was written.
   */
  gather?: { ms: number; while(): boolean };
}

interface Waiting<T> {
  item: T;
  done(): void;
  failed(err: unknown): void;
}

export class BatchWriter<T> {
  readonly #opts: BatchWriterOptions<T>;
  readonly #waiting: Waiting<T>[] = [];
  #writing = false;
  #writer: Promise<void> = Promise.resolve();
  #full: (() => void) | undefined;
  #draining = false;

  constructor(opts: BatchWriterOptions<T>) {
    this.#opts = opts;
  }

  /** Hands `item` over; resolves at once, or when its batch is written if the writer is behind (and rejects if that write fails). */
  async add(item: T): Promise<void> {
    const written = this.record(item);
    if (this.#waiting.length > this.#opts.maxBatch) return written;
    written.catch((err: unknown) => this.#opts.failed?.(item, err));
  }

  /** Hands `item` over and waits until its batch is committed (rejects if its write fails). */
  record(item: T): Promise<void> {
    const written = new Promise<void>((resolve, reject) => {
      this.#waiting.push({ item, done: resolve, failed: reject });
    });
    if (!this.#writing) this.#writer = this.#writeBatches();
    if (this.#waiting.length >= this.#opts.maxBatch) this.#full?.();
    return written;
  }

  /** How many items wait to be written. */
  get waiting(): number {
    return this.#waiting.length;
  }

  /** Waits until every item handed over is written or has failed (at shutdown). */
  async drain(): Promise<void> {
    this.#draining = true;
    try {
      while (this.#writing) {
        this.#full?.();
        await this.#writer;
      }
    } finally {
      this.#draining = false;
    }
  }

  async #writeBatches(): Promise<void> {
    const { maxBatch, gather } = this.#opts;
    // Set, and cleared with no await between the loop's last look at the queue and the end: an
    // item added meanwhile is either seen by the loop or starts a new writer.
    this.#writing = true;
    try {
      while (this.#waiting.length > 0) {
        if (gather && !this.#draining && this.#waiting.length < maxBatch && gather.while()) {
          await new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, gather.ms);
            this.#full = () => {
              clearTimeout(timer);
              resolve();
            };
          });
          this.#full = undefined;
        }
        const batch = this.#waiting.splice(0, maxBatch);
        try {
          await this.#commit(batch.map((w) => w.item));
          for (const w of batch) w.done();
        } catch (err) {
          if (batch.length === 1) batch[0]!.failed(err);
          // One item the database refuses must not hold back the others: each alone, once.
          else for (const w of batch) await this.#commit([w.item]).then(w.done, w.failed);
        }
      }
    } finally {
      this.#writing = false;
    }
  }

  async #commit(items: T[]): Promise<void> {
    await this.#opts.db.transaction((tx) => this.#opts.write(tx, items));
    // What follows the commit cannot undo it: its own errors are its own to report.
    await this.#opts.written?.(items).catch(() => undefined);
  }
}

/** A worker that, when stopped, also waits until what it handed to its batch writer is written. */
export class DrainingWorker<R extends QueueRow> extends Worker<R> {
  readonly #writer: { drain(): Promise<void> };

  constructor(writer: { drain(): Promise<void> }, opts: WorkerOptions<R>) {
    super(opts);
    this.#writer = writer;
  }

  override async stop(): Promise<void> {
    await super.stop();
    await this.#writer.drain();
  }
}
