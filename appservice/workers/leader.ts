// A singleton job (one that must run in one Kuvert process at a time, like the drop folder's
// intake) is owned through a lease row in PostgreSQL: the holder renews it every few seconds;
// when the holder dies its lease runs out and another process takes the row. The database's
// clock decides, so processes on different machines agree. With the embedded database there
// is one process anyway, and it always holds every lease.
import type { Database } from "../db/database.ts";
import { logger } from "../log.ts";
import { workerId } from "./queue.ts";

const log = logger("leader");

export interface LeaderOptions {
  /** How long a lease lasts without renewal: a dead holder is replaced after at most this long. */
  leaseSeconds?: number;
  /** How often the lease is renewed (holder) or tried (others). */
  renewSeconds?: number;
  /** Who holds it; by default this process's worker id. */
  holder?: string;
  /** Called when this process takes or loses the lease. */
  onChange?: (held: boolean) => void;
}

export class Leadership {
  readonly name: string;
  readonly holder: string;
  readonly #db: Database;
  readonly #leaseSeconds: number;
  readonly #renewMs: number;
  readonly #onChange: ((held: boolean) => void) | undefined;
  #held = false;
  #timer: NodeJS.Timeout | undefined;
  #tick: Promise<void> = Promise.resolve();
  #stopped = false;

  constructor(db: Database, name: string, opts: LeaderOptions = {}) {
    this.#db = db;
    this.name = name;
    this.holder = opts.holder ?? workerId;
    this.#leaseSeconds = opts.leaseSeconds ?? 15;
    this.#renewMs = (opts.renewSeconds ?? Math.max(1, Math.floor(this.#leaseSeconds / 3))) * 1000;
    this.#onChange = opts.onChange;
  }

  /** Whether this process holds the lease now (as of the last renewal). */
  get held(): boolean {
    return this.#held;
  }

  /** Tries at once, then renews or tries again every renewSeconds until stop(). */
  async start(): Promise<void> {
    this.#stopped = false;
    await this.attempt();
    const loop = (): void => {
      if (this.#stopped) return;
      this.#timer = setTimeout(() => {
        this.#tick = this.attempt()
          .then(() => undefined)
          .finally(loop);
      }, this.#renewMs);
      this.#timer.unref();
    };
    loop();
  }

  /** One try: takes the row if it is free or expired, renews it if held. Returns whether held. */
  async attempt(): Promise<boolean> {
    let held: boolean;
    try {
      const res = await this.#db.query<{ holder: string }>(
        `INSERT INTO leaders (name, holder, lease_until) VALUES ($1, $2, now() + make_interval(secs => $3))
         ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, lease_until = EXCLUDED.lease_until
           WHERE leaders.holder = EXCLUDED.holder OR leaders.lease_until < now()
         RETURNING holder`,
        [this.name, this.holder, this.#leaseSeconds],
      );
      held = res.rows[0]?.holder === this.holder;
    } catch (err) {
      // Without the database the lease cannot be known to be ours: act as if lost.
      log.warn({ err, name: this.name }, "the lease could not be renewed");
      held = false;
    }
    if (this.#stopped) return this.#held;
    this.#set(held);
    return held;
  }

  /** Stops renewing and gives the lease up, so another process takes it at once. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#tick.catch(() => undefined);
    if (!this.#held) return;
    this.#set(false);
    await this.#db.query("DELETE FROM leaders WHERE name = $1 AND holder = $2", [this.name, this.holder]).catch((err: unknown) => {
      log.warn({ err, name: this.name }, "the lease could not be given up; it runs out by itself");
    });
  }

  #set(held: boolean): void {
    if (held === this.#held) return;
    this.#held = held;
    log.info({ name: this.name, holder: this.holder }, held ? "this process now runs the job" : "this process no longer runs the job");
    this.#onChange?.(held);
  }
}
