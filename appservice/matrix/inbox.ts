// Events pushed by the homeserver are stored before the transaction is answered, then
// handled by a worker, in order per room. A replayed transaction id changes nothing, and
// an event seen in two transactions is stored once.
import type { Database, Queryable } from "../db/database.ts";
import { logger } from "../log.ts";
import { Worker, WorkQueue, type QueueRow } from "../workers/queue.ts";
import type { MatrixEvent } from "./events.ts";

const log = logger("inbox");

export interface InboundEventRow extends QueueRow {
  seq: string;
  event_id: string;
  room_id: string;
  event_type: string;
  event: MatrixEvent;
}

/**
 * A part of appservice transactions beyond `events` that a module keeps (to-device messages, device
 * lists: MSC2409, MSC3202), stored in the database transaction that stores the events, before the
 * homeserver's transaction is answered.
 */
export interface TransactionPart {
  /** Whether the transaction carries something for it. */
  wants(payload: Record<string, unknown>): boolean;
  store(tx: Queryable, txnId: string, payload: Record<string, unknown>): Promise<void>;
  /** After the commit of what it stored. */
  stored?(): void;
}

export interface InboxOptions {
  parts?: TransactionPart[];
  /** Event types that wait until a module rewrote them (m.room.encrypted until it is decrypted). */
  held?: string[];
}

/** stored: events to handle were kept; echoes: only Kuvert's own events, nothing kept; replayed: a transaction seen before. */
export type StoreOutcome = "stored" | "echoes" | "replayed";

/**
 * PostgreSQL's jsonb cannot hold \u0000, and a homeserver passes on what a client sent: one
 * message with a NUL character would fail every retry of its transaction and hold up all events
 * behind it. Stored events carry U+FFFD in its place.
 */
function withoutNul(_key: string, value: unknown): unknown {
  return typeof value === "string" && value.includes("\0") ? value.replaceAll("\0", "\uFFFD") : value;
}

export class Inbox {
  readonly #db: Database;
  readonly #isOwnUser: (userId: string) => boolean;
  readonly #parts: TransactionPart[];
  readonly queue: WorkQueue<InboundEventRow>;

  constructor(db: Database, isOwnUser: (userId: string) => boolean, leaseSeconds: number, opts: InboxOptions = {}) {
    this.#db = db;
    this.#isOwnUser = isOwnUser;
    this.#parts = opts.parts ?? [];
    const held = (opts.held ?? []).map((t) => `'${t.replaceAll("'", "''")}'`);
    this.queue = new WorkQueue<InboundEventRow>(
      db,
      {
        table: "inbound_events",
        key: "seq",
        // An event waits while an earlier event of its room is still pending.
        claimable: `NOT EXISTS (SELECT 1 FROM inbound_events e WHERE e.room_id = q.room_id AND e.state = 'pending' AND e.seq < q.seq)${held.length ? ` AND q.event_type NOT IN (${held.join(", ")})` : ""}`,
        order: "q.seq",
        maxAttempts: 8,
      },
      leaseSeconds,
    );
  }

  /** Stores a transaction's events and what its parts keep of it. Kuvert's own events (echoes) are not kept. */
  async store(txnId: string, events: MatrixEvent[], payload: Record<string, unknown> = {}): Promise<StoreOutcome> {
    const wanted = events.filter((e) => !this.#isOwnUser(e.sender));
    const parts = this.#parts.filter((p) => p.wants(payload));
    // Only echoes (most transactions while documents go out): nothing to keep, and a replay of it
    // would store nothing either, so the transaction id need not be remembered.
    if (wanted.length === 0 && parts.length === 0) return "echoes";
    const outcome = await this.#db.transaction(async (tx): Promise<StoreOutcome> => {
      const inserted = await tx.query("INSERT INTO appservice_transactions (txn_id, event_count) VALUES ($1, $2) ON CONFLICT (txn_id) DO NOTHING", [txnId, events.length]);
      if (inserted.rowCount === 0) return "replayed";
      for (const e of wanted) {
        await tx.query(
          `INSERT INTO inbound_events (event_id, room_id, event_type, event) VALUES ($1, $2, $3, $4)
           ON CONFLICT (event_id) DO NOTHING`,
          [e.event_id, e.room_id, e.type, JSON.stringify(e, withoutNul)],
        );
      }
      for (const part of parts) await part.store(tx, txnId, payload);
      return "stored";
    });
    if (outcome === "stored") for (const part of parts) part.stored?.();
    return outcome;
  }

  worker(handle: (event: MatrixEvent) => Promise<void>, concurrency: number, pollMilliseconds: number): Worker<InboundEventRow> {
    return new Worker<InboundEventRow>({
      name: "inbox",
      queue: this.queue,
      concurrency,
      pollMilliseconds,
      handle: async (row) => {
        await handle(row.event);
        await this.queue.complete(row, ", handled_at = now()");
      },
      onGaveUp: async (row, err) => {
        log.error({ eventId: row.event_id, type: row.event_type, err }, "an event could not be handled and was set aside");
      },
    });
  }
}
