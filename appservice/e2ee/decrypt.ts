// Encrypted room events from the homeserver's transactions: the inbox holds them back (its
// heldEventTypes) until the process that owns the bot's device decrypted them in place; then they
// are handled as any event, in their room's order: commands answered, files scanned (an encrypted
// file's ciphertext is downloaded, decrypted with the key in the event and checked against its
// hash; documents/inbound-scan.ts).
//
// The rule for what cannot be decrypted, fail-closed: an event's room key may arrive after it
// (another transaction, a clerk's device that shares late), so decryption is tried
// e2ee.decryptAttempts times, 1 s, 2 s, 4 s … apart. After that the event becomes an
// `io.kuvert.undecryptable` event in its place, handled in its room's order like any other (with
// the inbox's retries, so a homeserver that is away does not let it slip): in an organisation room
// it is redacted, since what it carries cannot be scanned, and the room is told why; in any other
// room it is set aside. Both are counted (kuvert_e2ee_undecryptable_total), audited and logged.
import type { Database } from "../db/database.ts";
import { logger } from "../log.ts";
import type { MatrixEvent } from "../matrix/events.ts";
import { Worker, WorkQueue, workerId, type QueueRow } from "../workers/queue.ts";
import { UndecryptableEventError, type BotDevice } from "./device.ts";

const log = logger("e2ee-decrypt");

export const ENCRYPTED = "m.room.encrypted";
/** What an encrypted event becomes once it counts as undecryptable (content: `reason`). */
export const UNDECRYPTABLE = "io.kuvert.undecryptable";

interface EncryptedRow extends QueueRow {
  seq: string;
  event_id: string;
  room_id: string;
  event: MatrixEvent;
}

export interface DecryptionOptions {
  attempts: number;
  leaseSeconds: number;
  concurrency: number;
  pollMilliseconds: number;
  /** An event was decrypted (counted). */
  decrypted(): void;
  /** The event is ready for the room handlers (decrypted, or undecryptable). */
  ready(): void;
}

export class Decryption {
  readonly #db: Database;
  readonly queue: WorkQueue<EncryptedRow>;
  readonly #opts: DecryptionOptions;

  constructor(db: Database, opts: DecryptionOptions) {
    this.#db = db;
    this.#opts = opts;
    // After `attempts` tries that could not decrypt, the event becomes undecryptable (handle()); the
    // queue's own limit is for other failures (the device being taken over), which are tried longer.
    this.queue = new WorkQueue<EncryptedRow>(db, { table: "inbound_events", key: "seq", claimable: `q.event_type = '${ENCRYPTED}'`, order: "q.seq", maxAttempts: opts.attempts + 10 }, opts.leaseSeconds);
  }

  /** Run by the device's owner: `device()` is its device (and what the transactions brought for it, handed in first). */
  worker(device: () => Promise<BotDevice>): Worker<EncryptedRow> {
    return new Worker<EncryptedRow>({
      name: "e2ee-decrypt",
      queue: this.queue,
      concurrency: this.#opts.concurrency,
      pollMilliseconds: this.#opts.pollMilliseconds,
      handle: async (row) => {
        let event: MatrixEvent;
        try {
          const clear = await (await device()).decrypt(row.event as unknown as Record<string, unknown>);
          const unsigned = { ...row.event.unsigned, "io.kuvert.encrypted": { sender_key: clear.senderKey } };
          event = { ...row.event, type: clear.type, content: clear.content, unsigned };
        } catch (err) {
          if (!(err instanceof UndecryptableEventError) || row.attempts < this.#opts.attempts) throw err;
          log.warn({ eventId: row.event_id, room: row.room_id, reason: err.message }, "an encrypted event could not be decrypted");
          event = { ...row.event, type: UNDECRYPTABLE, content: { reason: err.message } };
        }
        // Ready for the inbox: its type is no longer held back; the attempts count starts again for its handling.
        await this.#db.query(
          `UPDATE inbound_events SET event = $3, event_type = $4, attempts = 0, run_after = now(), lease_until = NULL, leased_by = NULL, last_error = NULL
            WHERE seq = $1 AND leased_by = $2`,
          [row.seq, workerId, JSON.stringify(event), event.type],
        );
        if (event.type !== UNDECRYPTABLE) this.#opts.decrypted();
        this.#opts.ready();
      },
    });
  }
}
