// Encrypted room events from the homeserver's transactions: the inbox holds them back (its
// heldEventTypes) until the process that owns the bot's device decrypted them in place; then they
// are handled as any event, in their room's order: commands answered, files scanned (an encrypted
// file's ciphertext is downloaded, decrypted with the key in the event and checked against its
// hash; documents/inbound-scan.ts).
//
// The rule for what cannot be decrypted, fail-closed: an event's room key may arrive after it
// (another transaction, a clerk's device that shares late), so decryption is tried
// e2ee.decryptAttempts times, 1 s, 2 s, 4 s … apart. After that, in an organisation room the event
// is redacted, since what it carries cannot be scanned, and the room is told why; in any other
// room it is set aside. Both are counted (kuvert_e2ee_undecryptable_total) and logged.
import type { Database } from "../db/database.ts";
import { logger } from "../log.ts";
import type { MatrixEvent } from "../matrix/events.ts";
import { Worker, WorkQueue, workerId, type QueueRow } from "../workers/queue.ts";
import type { BotDevice } from "./device.ts";

const log = logger("e2ee-decrypt");

export const ENCRYPTED = "m.room.encrypted";

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
  /** The event is ready for the room handlers. */
  decrypted(): void;
  /** It could not be decrypted in time: what then (the fail-closed rule). */
  undecryptable(event: MatrixEvent, reason: string): Promise<void>;
}

export class Decryption {
  readonly #db: Database;
  readonly queue: WorkQueue<EncryptedRow>;
  readonly #opts: DecryptionOptions;

  constructor(db: Database, opts: DecryptionOptions) {
    this.#db = db;
    this.#opts = opts;
    this.queue = new WorkQueue<EncryptedRow>(db, { table: "inbound_events", key: "seq", claimable: `q.event_type = '${ENCRYPTED}'`, order: "q.seq", maxAttempts: opts.attempts }, opts.leaseSeconds);
  }

  /** Run by the device's owner: `device()` is its device (and what the transactions brought for it, handed in first). */
  worker(device: () => Promise<BotDevice>): Worker<EncryptedRow> {
    return new Worker<EncryptedRow>({
      name: "e2ee-decrypt",
      queue: this.queue,
      concurrency: this.#opts.concurrency,
      pollMilliseconds: this.#opts.pollMilliseconds,
      handle: async (row) => {
        const clear = await (await device()).decrypt(row.event as unknown as Record<string, unknown>);
        const unsigned = { ...row.event.unsigned, "io.kuvert.encrypted": { sender_key: clear.senderKey } };
        const event: MatrixEvent = { ...row.event, type: clear.type, content: clear.content, unsigned };
        // Ready for the inbox: its type is no longer held back; the attempts count starts again for its handling.
        await this.#db.query(
          `UPDATE inbound_events SET event = $3, event_type = $4, attempts = 0, run_after = now(), lease_until = NULL, leased_by = NULL, last_error = NULL
            WHERE seq = $1 AND leased_by = $2`,
          [row.seq, workerId, JSON.stringify(event), clear.type],
        );
        this.#opts.decrypted();
      },
      onGaveUp: async (row, err) => {
        const reason = err instanceof Error ? err.message : String(err);
        log.warn({ eventId: row.event_id, room: row.room_id, reason }, "an encrypted event could not be decrypted");
        await this.#opts.undecryptable(row.event, reason);
      },
    });
  }
}
