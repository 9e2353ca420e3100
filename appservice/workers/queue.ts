// Work that must survive a crash is a row with a state. Workers claim rows with
// FOR UPDATE SKIP LOCKED and hold a lease; a worker that dies loses its lease and the row
// is claimed again, so several Kuvert processes can share one database.
import { randomUUID } from "node:crypto";
import type { Database, Queryable } from "../db/database.ts";
import { logger } from "../log.ts";

const log = logger("workers");

export interface QueueRow {
  attempts: number;
  lease_until: Date | null;
  leased_by: string | null;
  last_error: string | null;
}

export interface QueueSpec {
  /** Table with columns state, attempts, run_after, lease_until, leased_by, last_error. */
  table: string;
  key: string;
  /** Extra SQL condition on pending rows, over alias `q`. */
  claimable?: string;
  order: string;
  maxAttempts: number;
  /** Column whose value must be unchanged for complete() to mark a row done (re-requested work stays pending). */
  version?: string;
}

export const workerId = `${process.pid}-${randomUUID().slice(0, 8)}`;

/** Backoff for attempt n (1-based): 1 s, 2 s, 4 s … capped at 10 minutes, with jitter. */
export function backoffSeconds(attempt: number, retryAfterMs?: number): number {
  const base = Math.min(600, 2 ** Math.max(0, attempt - 1));
  const jittered = base * (0.8 + Math.random() * 0.4);
  return Math.max(jittered, (retryAfterMs ?? 0) / 1000);
}

export class WorkQueue<R extends QueueRow> {
  readonly spec: QueueSpec;
  readonly #db: Database;
  readonly #leaseSeconds: number;

  constructor(db: Database, spec: QueueSpec, leaseSeconds: number) {
    this.#db = db;
    this.spec = spec;
    this.#leaseSeconds = leaseSeconds;
  }

  async claim(limit: number): Promise<R[]> {
    const { table, key, claimable, order } = this.spec;
    const { rows } = await this.#db.query<R>(
      `UPDATE ${table} SET lease_until = now() + make_interval(secs => $1), leased_by = $2, attempts = attempts + 1
        WHERE ${key} IN (
          SELECT ${key} FROM ${table} q
           WHERE q.state = 'pending' AND q.run_after <= now() AND (q.lease_until IS NULL OR q.lease_until < now())
           ${claimable ? `AND ${claimable}` : ""}
           ORDER BY ${order} LIMIT $3 FOR UPDATE SKIP LOCKED)
        RETURNING *`,
      [this.#leaseSeconds, workerId, limit],
    );
    return rows;
  }

  /**
   * Marks the row done, if this worker still holds it (and its version did not move); inside
   * transaction `via` when given, so the work is done exactly when what it did is recorded.
   */
  async complete(row: R, extraSet = "", extraParams: unknown[] = [], via: Queryable = this.#db): Promise<boolean> {
    const { table, key, version } = this.spec;
    const r = row as unknown as Record<string, unknown>;
    const params: unknown[] = [r[key], workerId, ...extraParams];
    let versionCheck = "";
    if (version) {
      params.push(r[version]);
      versionCheck = `AND ${version} = $${params.length}`;
    }
    const done = await via.query(
      `UPDATE ${table} SET state = 'done', lease_until = NULL, last_error = NULL ${extraSet}
        WHERE ${key} = $1 AND leased_by = $2 ${versionCheck}`,
      params,
    );
    if (done.rowCount === 0 && version) {
      // Asked for again while it ran: release it to run once more.
      await via.query(`UPDATE ${table} SET lease_until = NULL, attempts = 0 WHERE ${key} = $1 AND leased_by = $2`, [r[key], workerId]);
    }
    return done.rowCount > 0;
  }

  /**
   * Marks several rows done in one statement, inside transaction `via`: only those this worker
   * still holds and nobody finished meanwhile. Answers their keys. For queues without a version
   * column.
   */
  async completeMany(rows: R[], via: Queryable): Promise<Set<string>> {
    const { table, key, version } = this.spec;
    if (version) throw new Error(`completeMany: ${table} has a version column; complete() each row`);
    if (rows.length === 0) return new Set();
    const done = await via.query<{ key: string }>(
      `UPDATE ${table} SET state = 'done', lease_until = NULL, last_error = NULL
        WHERE ${key} = ANY ($1) AND leased_by = $2 AND state = 'pending'
        RETURNING ${key}::text AS key`,
      [rows.map((r) => (r as unknown as Record<string, unknown>)[key]), workerId],
    );
    return new Set(done.rows.map((r) => r.key));
  }

  /**
   * Records a failure: retried after a backoff, or failed for good after maxAttempts, or at once
   * when `permanent` (a retry cannot cure it). Returns true if it gave up.
   */
  async fail(row: R, error: string, retryAfterMs?: number, permanent = false): Promise<boolean> {
    const { table, key, maxAttempts } = this.spec;
    const r = row as unknown as Record<string, unknown>;
    const final = permanent || row.attempts >= maxAttempts;
    await this.#db.query(
      `UPDATE ${table} SET lease_until = NULL, last_error = $3,
          state = CASE WHEN $4 THEN 'failed' ELSE state END,
          run_after = now() + make_interval(secs => $5)
        WHERE ${key} = $1 AND leased_by = $2`,
      [r[key], workerId, error.slice(0, 2000), final, backoffSeconds(row.attempts, retryAfterMs)],
    );
    return final;
  }

  /** Tries again later without counting this as a failed attempt (e.g. documents held while the scanner is away). */
  async postpone(row: R, seconds: number, reason: string): Promise<void> {
    const { table, key } = this.spec;
    await this.#db.query(
      `UPDATE ${table} SET lease_until = NULL, last_error = $3, attempts = greatest(attempts - 1, 0), run_after = now() + make_interval(secs => $4)
        WHERE ${key} = $1 AND leased_by = $2`,
      [(row as unknown as Record<string, unknown>)[key], workerId, reason.slice(0, 2000), seconds],
    );
  }

  /** Extends the leases of rows this worker is still handling, so nobody takes them over meanwhile. */
  async renew(rows: R[]): Promise<void> {
    if (rows.length === 0) return;
    const { table, key } = this.spec;
    await this.#db.query(`UPDATE ${table} SET lease_until = now() + make_interval(secs => $1) WHERE ${key} = ANY ($2) AND leased_by = $3`, [this.#leaseSeconds, rows.map((r) => (r as unknown as Record<string, unknown>)[key]), workerId]);
  }

  get leaseSeconds(): number {
    return this.#leaseSeconds;
  }

  /** Gives claimed rows back without counting an attempt (graceful shutdown). */
  async release(row: R): Promise<void> {
    const { table, key } = this.spec;
    await this.#db.query(`UPDATE ${table} SET lease_until = NULL, attempts = greatest(attempts - 1, 0) WHERE ${key} = $1 AND leased_by = $2`, [(row as unknown as Record<string, unknown>)[key], workerId]);
  }
}

export interface WorkerOptions<R extends QueueRow> {
  name: string;
  queue: WorkQueue<R>;
  /** How many rows at once: fixed, or a limit that moves (limit.ts). */
  concurrency: number | { readonly current: number };
  pollMilliseconds: number;
  handle(row: R): Promise<void>;
  /** Called when a row failed for good, after fail() recorded it. */
  onGaveUp?(row: R, error: unknown): Promise<void>;
}

/**
 * What an error says about retrying: how long to wait before the next attempt (e.g. from a 429
 * answer), or that no attempt can succeed (`permanent`: the item fails at once with the error
 * as its reason, and the queue's onGaveUp tells staff). One rule for every queue.
 */
export interface RetryHint {
  retryAfterMs?: number;
  readonly permanent?: boolean;
}

/** True when the error says that retrying cannot cure it. */
export function isPermanent(err: unknown): boolean {
  return typeof err === "object" && err !== null && (err as RetryHint).permanent === true;
}

/** Runs a queue: claims up to `concurrency` rows at a time, handles them, repeats. */
export class Worker<R extends QueueRow> {
  readonly #opts: WorkerOptions<R>;
  #running = false;
  #inFlight = new Set<Promise<void>>();
  readonly #handling = new Set<R>();
  #renewTimer: NodeJS.Timeout | undefined;
  #timer: NodeJS.Timeout | undefined;
  #wakeRequested = false;
  #loop: Promise<void> | undefined;
  #wakeUp: (() => void) | undefined;

  constructor(opts: WorkerOptions<R>) {
    this.#opts = opts;
  }

  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#loop = this.#run();
    // A third of the lease: a row in hand is renewed twice before it could expire.
    this.#renewTimer = setInterval(
      () => {
        this.#opts.queue.renew([...this.#handling]).catch((err: unknown) => log.error({ err, worker: this.#opts.name }, "renewing leases failed"));
      },
      (this.#opts.queue.leaseSeconds * 1000) / 3,
    );
    this.#renewTimer.unref();
  }

  /** How many rows it has in hand now (handled, or their failure being recorded). */
  get handling(): number {
    return this.#handling.size;
  }

  /** Looks for work now instead of at the next poll. */
  wake(): void {
    this.#wakeRequested = true;
    this.#wakeUp?.();
  }

  async stop(): Promise<void> {
    this.#running = false;
    this.#wakeUp?.();
    await this.#loop;
    await Promise.allSettled([...this.#inFlight]);
    clearInterval(this.#renewTimer);
  }

  async #run(): Promise<void> {
    const { queue, concurrency, name } = this.#opts;
    while (this.#running) {
      this.#wakeRequested = false;
      const free = (typeof concurrency === "number" ? concurrency : concurrency.current) - this.#inFlight.size;
      let claimed: R[] = [];
      if (free > 0) {
        try {
          claimed = await queue.claim(free);
        } catch (err) {
          log.error({ err, worker: name }, "claiming work failed");
        }
      }
      for (const row of claimed) {
        const p = this.#handleOne(row).finally(() => {
          this.#inFlight.delete(p);
          this.wake();
        });
        this.#inFlight.add(p);
      }
      if (claimed.length > 0 && claimed.length === free) continue;
      if (this.#wakeRequested) continue;
      await new Promise<void>((resolve) => {
        this.#wakeUp = resolve;
        this.#timer = setTimeout(resolve, this.#opts.pollMilliseconds);
      });
      clearTimeout(this.#timer);
      this.#wakeUp = undefined;
    }
  }

  async #handleOne(row: R): Promise<void> {
    const { queue, name } = this.#opts;
    this.#handling.add(row);
    try {
      await this.#opts.handle(row);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      const retryAfterMs = (err as RetryHint | undefined)?.retryAfterMs;
      const permanent = isPermanent(err);
      try {
        const gaveUp = await queue.fail(row, message, retryAfterMs, permanent);
        log.warn({ worker: name, attempts: row.attempts, gaveUp, permanent, err }, gaveUp ? "work item failed for good" : "work item failed, will retry");
        if (gaveUp) await this.#opts.onGaveUp?.(row, err);
      } catch (failErr) {
        log.error({ worker: name, err: failErr }, "recording a failure failed; the lease will expire");
      }
    } finally {
      this.#handling.delete(row);
    }
  }
}
