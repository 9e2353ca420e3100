// The bot's device is owned by one Kuvert process at a time: the holder of the lease "e2ee-device"
// (workers/leader.ts: a row in PostgreSQL, renewed every few seconds, taken over by another
// process when the holder dies; with the embedded database there is one process). Taking the lease
// over restores the device's state from the database (crypto-store.ts records who did: a process
// that lost the lease and still runs can save nothing any more). The owner runs the device's
// work: what the transactions brought for it, the encrypted sends of every process, the
// decryption of clerks' encrypted events.
import type { Database } from "../db/database.ts";
import { logger } from "../log.ts";
import type { Homeserver } from "../matrix/homeserver.ts";
import type { BackgroundWorker } from "../module.ts";
import { Leadership } from "../workers/leader.ts";
import { BotDevice, type DeviceOptions } from "./device.ts";
import type { DeviceInbox } from "./transactions.ts";
import { recordVerifications, undoneDecisions } from "./verifications.ts";

const log = logger("e2ee-owner");

export interface OwnerParts {
  /** Whether a user may verify the bot's device (staff). */
  mayVerify(userId: string): boolean;
  /** The workers the owner runs once its device is open (the sends, the decryption). */
  workers(device: () => Promise<BotDevice>): BackgroundWorker[];
  /** Called when this process no longer owns the device. */
  released(): void;
}

export class DeviceOwner {
  readonly #db: Database;
  readonly #hs: Homeserver;
  readonly #inbox: DeviceInbox;
  readonly #opts: DeviceOptions;
  readonly #parts: OwnerParts;
  readonly #pollMs: number;
  #leader: Leadership | undefined;
  #turn: Promise<void> = Promise.resolve();
  #device: BotDevice | undefined;
  #workers: BackgroundWorker[] = [];
  /** Why the device is not open while this process holds the lease, for readiness. */
  #problem: string | undefined;
  #retry: NodeJS.Timeout | undefined;
  #draining: Promise<void> = Promise.resolve();
  #drainWaiting = false;
  #pumpTimer: NodeJS.Timeout | undefined;
  #held = false;

  constructor(db: Database, hs: Homeserver, inbox: DeviceInbox, opts: DeviceOptions & { pollMilliseconds: number }, parts: OwnerParts) {
    this.#db = db;
    this.#hs = hs;
    this.#inbox = inbox;
    this.#opts = { deviceId: opts.deviceId, secret: opts.secret, isEncrypted: opts.isEncrypted };
    this.#pollMs = opts.pollMilliseconds;
    this.#parts = parts;
  }

  async start(): Promise<void> {
    this.#leader = new Leadership(this.#db, "e2ee-device", {
      onChange: (held) => {
        this.#held = held;
        this.#turn = this.#turn.then(() => (held ? this.#take() : this.#release())).catch((err: unknown) => log.error({ err }, "taking over or giving up the bot's device failed"));
      },
    });
    await this.#leader.start();
    await this.#turn;
  }

  async stop(): Promise<void> {
    this.#held = false;
    await this.#leader?.stop();
    await this.#turn;
    await this.#release();
  }

  /** What readiness shows: the device open here, owned by another process, or why not open. */
  async status(): Promise<{ ok: boolean; detail: string }> {
    if (this.#device) return { ok: true, detail: `device ${this.#device.deviceId} open in this process${this.#device.crossSigningProblem ? `; not cross-signed: ${this.#device.crossSigningProblem}` : ""}` };
    if (this.#held) return { ok: false, detail: this.#problem ?? "opening the bot's device" };
    const { rows } = await this.#db.query<{ holder: string }>("SELECT holder FROM leaders WHERE name = 'e2ee-device' AND lease_until > now()");
    return rows[0] ? { ok: true, detail: `device ${this.#opts.deviceId} open in process ${rows[0].holder}` } : { ok: false, detail: "no Kuvert process owns the bot's device yet" };
  }

  /** Hands the device what the transactions stored for it (now, in the owner; others' transactions wake it by the poll). */
  wake(): void {
    if (!this.#device || this.#drainWaiting) return;
    this.#drainWaiting = true;
    this.#drainSerially(true).catch((err: unknown) => log.error({ err }, "handing the device its to-device messages failed; tried again at the next poll"));
  }

  /** The open device, once what transactions stored for it has been handed in. */
  async device(): Promise<BotDevice> {
    const device = this.#device;
    if (!device) throw new Error("the bot's device is not open in this process");
    await this.#drainSerially();
    return device;
  }

  /** One drain after another: no update is handed in twice. With `decisions`, also what people decided about verifications (not before every send). */
  #drainSerially(decisions = false): Promise<void> {
    const run = this.#draining.then(() => {
      if (decisions) this.#drainWaiting = false;
      return this.#drain(decisions);
    });
    this.#draining = run.catch(() => undefined);
    return run;
  }

  async #drain(decisions: boolean): Promise<void> {
    for (;;) {
      const device = this.#device;
      if (!device) return;
      const batch = await this.#inbox.next();
      if (!batch) break;
      const verifiers = await device.receive(batch.updates);
      await this.#inbox.done(batch.seqs);
      for (const userId of verifiers) await recordVerifications(this.#db, await device.verifications(userId, this.#parts.mayVerify(userId)));
    }
    // What people decided about the emoji of a verification, carried out.
    const device = this.#device;
    if (!device || !decisions) return;
    for (const d of await undoneDecisions(this.#db)) {
      await device.decide(d.userId, d.flowId, d.match);
      await recordVerifications(this.#db, await device.verifications(d.userId, this.#parts.mayVerify(d.userId)));
    }
  }

  async #take(attempt = 1): Promise<void> {
    if (!this.#held || this.#device) return;
    try {
      this.#device = await BotDevice.open(this.#db, this.#hs, this.#opts);
      this.#problem = undefined;
    } catch (err) {
      this.#problem = `the bot's device could not be opened: ${(err as Error).message}`;
      const delay = Math.min(60_000, 1000 * 2 ** Math.min(attempt, 6));
      log.error({ err, retryInMs: delay }, "the bot's device could not be opened; Kuvert tries again");
      this.#retry = setTimeout(() => {
        this.#turn = this.#turn.then(() => this.#take(attempt + 1)).catch(() => undefined);
      }, delay);
      this.#retry.unref();
      return;
    }
    this.#workers = this.#parts.workers(() => this.device());
    for (const w of this.#workers) w.start();
    const poll = () => {
      this.wake();
      this.#pumpTimer = setTimeout(poll, this.#pollMs);
      this.#pumpTimer.unref();
    };
    poll();
  }

  async #release(): Promise<void> {
    clearTimeout(this.#retry);
    clearTimeout(this.#pumpTimer);
    const workers = this.#workers;
    this.#workers = [];
    this.#parts.released();
    await Promise.all(workers.map((w) => w.stop()));
    await this.#draining;
    this.#device?.close();
    this.#device = undefined;
  }
}
