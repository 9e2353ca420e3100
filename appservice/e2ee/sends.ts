// Events for encrypted rooms, from whichever Kuvert process sends them, encrypted and sent by the
// process that owns the bot's device. A send is a row keyed by its work key (the key that
// Homeserver.send derives the transaction id from): asking again for the same work key, after a
// timeout or a crash, finds the same row, and a row sent before answers its event at once. The
// owner encrypts anew when it retries a row whose send may have got through; the homeserver then
// answers the first event for the same transaction id (CS API §"Transaction identifiers"), so a
// retry is the same event.
import type { Database } from "../db/database.ts";
import { logger } from "../log.ts";
import { HomeserverError } from "../matrix/homeserver.ts";
import { Worker, WorkQueue, type QueueRow } from "../workers/queue.ts";

const log = logger("e2ee-sends");

type Json = Record<string, unknown>;

interface SendRow extends QueueRow {
  work_key: string;
  room_id: string;
  event_type: string;
  content: Json;
  event_id: string | null;
  state: "pending" | "done" | "failed";
}

/** How long a send waits for the device's owner before it fails as a transient error (and its work is retried). */
const WAIT_MS = 60_000;
/** How often a process that does not own the device looks whether its send went out. */
const POLL_MS = 50;
/** The same in the owner, whose worker settles its own sends at once. */
const LOCAL_POLL_MS = 1000;

export class EncryptedSends {
  readonly #db: Database;
  readonly queue: WorkQueue<SendRow>;
  /** Sends this process waits for, by work key: settled by the local worker at once, or by polling. */
  readonly #waiting = new Map<string, { resolve(eventId: string): void; reject(err: Error): void }[]>();
  #wakeLocal: () => void = () => undefined;
  /** This process owns the device: its worker settles the waiting sends, the poll is only a safety net. */
  #local = false;

  constructor(db: Database, leaseSeconds: number) {
    this.#db = db;
    this.queue = new WorkQueue<SendRow>(db, { table: "e2ee_sends", key: "work_key", order: "q.created_at", maxAttempts: 10 }, leaseSeconds);
  }

  /** Sends `content` into `roomId`, encrypted by the device's owner; resolves with the event ID. */
  async send(roomId: string, type: string, content: Json, workKey: string): Promise<string> {
    const { rows } = await this.#db.query<{ event_id: string | null; state: string; last_error: string | null }>(
      `INSERT INTO e2ee_sends (work_key, room_id, event_type, content) VALUES ($1, $2, $3, $4)
       ON CONFLICT (work_key) DO UPDATE SET state = 'pending', attempts = 0, run_after = now(), last_error = NULL
         WHERE e2ee_sends.state = 'failed'
       RETURNING event_id, state, last_error`,
      [workKey, roomId, type, JSON.stringify(content)],
    );
    // No row back: it exists and did not fail. Sent already, or on its way.
    if (rows.length === 0) {
      const existing = await this.#row(workKey);
      if (existing?.event_id) return existing.event_id;
    }
    this.#wakeLocal();
    return this.#await(workKey);
  }

  /** The worker that sends, run by the process that owns the device. */
  worker(encryptAndSend: (row: { room_id: string; event_type: string; content: Json; work_key: string }) => Promise<string>, concurrency: number, pollMilliseconds: number): Worker<SendRow> {
    const worker = new Worker<SendRow>({
      name: "e2ee-sends",
      queue: this.queue,
      concurrency,
      pollMilliseconds,
      handle: async (row) => {
        const eventId = await encryptAndSend(row);
        await this.queue.complete(row, ", event_id = $3", [eventId]);
        this.#settle(row.work_key, (w) => w.resolve(eventId));
      },
      onGaveUp: async (row, err) => {
        log.error({ room: row.room_id, type: row.event_type, err }, "an event for an encrypted room could not be sent");
        this.#settle(row.work_key, (w) => w.reject(asError(err)));
      },
    });
    this.#wakeLocal = () => worker.wake();
    this.#local = true;
    return worker;
  }

  /** This process no longer owns the device: sends wait for the owner's row updates. */
  detach(): void {
    this.#wakeLocal = () => undefined;
    this.#local = false;
  }

  async #row(workKey: string): Promise<{ event_id: string | null; state: string; last_error: string | null } | undefined> {
    const { rows } = await this.#db.query<{ event_id: string | null; state: string; last_error: string | null }>("SELECT event_id, state, last_error FROM e2ee_sends WHERE work_key = $1", [workKey]);
    return rows[0];
  }

  #settle(workKey: string, how: (w: { resolve(eventId: string): void; reject(err: Error): void }) => void): void {
    const waiting = this.#waiting.get(workKey);
    this.#waiting.delete(workKey);
    for (const w of waiting ?? []) how(w);
  }

  /** Until the row is sent or failed (the local worker settles it at once; another process's, at the next poll). */
  #await(workKey: string): Promise<string> {
    return new Promise<string>((resolve, reject) => {
      const entry = { resolve, reject };
      const list = this.#waiting.get(workKey) ?? [];
      list.push(entry);
      this.#waiting.set(workKey, list);
      const deadline = Date.now() + WAIT_MS;
      const finish = (fn: () => void) => {
        const remaining = (this.#waiting.get(workKey) ?? []).filter((w) => w !== entry);
        if (remaining.length) this.#waiting.set(workKey, remaining);
        else this.#waiting.delete(workKey);
        fn();
      };
      const poll = async (): Promise<void> => {
        if (!(this.#waiting.get(workKey) ?? []).includes(entry)) return;
        const row = await this.#row(workKey).catch(() => undefined);
        if (row?.event_id) return finish(() => resolve(row.event_id!));
        if (row?.state === "failed") return finish(() => reject(new HomeserverError(400, "K_E2EE_SEND_FAILED", `the encrypted event could not be sent: ${row.last_error ?? "unknown error"}`)));
        if (Date.now() > deadline) return finish(() => reject(new HomeserverError(503, "K_E2EE_DEVICE_AWAY", "no Kuvert process has the bot's device ready to encrypt (it is being taken over, or cannot start); the work is tried again")));
        setTimeout(() => void poll(), this.#local ? LOCAL_POLL_MS : POLL_MS).unref();
      };
      setTimeout(() => void poll(), this.#local ? LOCAL_POLL_MS : POLL_MS).unref();
    });
  }
}

function asError(err: unknown): Error {
  if (err instanceof Error) return err;
  return new Error(String(err));
}
