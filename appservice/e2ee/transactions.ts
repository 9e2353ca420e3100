// What the homeserver's transactions carry for the bot's device, beside room events: to-device
// messages (MSC2409, `de.sorunome.msc2409.to_device`; `to_device` once stable), and MSC3202's device
// lists (`org.matrix.msc3202.device_lists`), one-time-key counts and unused fallback key types
// (`org.matrix.msc3202.device_one_time_key_counts`, `…device_unused_fallback_key_types`, both
// by user and device). Any Kuvert process may receive a transaction: what it carries for the
// device is stored, in order, before the transaction is answered (answering acknowledges the
// to-device messages: the homeserver will not send them again), and handed to the device by the
// process that owns it.
import type { Database, Queryable } from "../db/database.ts";
import type { TransactionPart } from "../matrix/inbox.ts";
import type { DeviceUpdate } from "./device.ts";

type Json = Record<string, unknown>;
type PerDevice<T> = Record<string, Record<string, T> | undefined>;

const TO_DEVICE = ["to_device", "de.sorunome.msc2409.to_device"];
const DEVICE_LISTS = ["device_lists", "org.matrix.msc3202.device_lists"];
const KEY_COUNTS = ["device_one_time_keys_count", "org.matrix.msc3202.device_one_time_keys_count", "org.matrix.msc3202.device_one_time_key_counts"];
const FALLBACK = ["device_unused_fallback_key_types", "org.matrix.msc3202.device_unused_fallback_key_types"];

function first<T>(payload: Json, names: string[]): T | undefined {
  for (const name of names) if (payload[name] !== undefined) return payload[name] as T;
  return undefined;
}

function figures(u: DeviceUpdate): string {
  return JSON.stringify([u.keyCounts, u.fallback]);
}

/** What the transaction carries for the device, or null when nothing. */
export function deviceUpdateOf(payload: Json, userId: string, deviceId: string): DeviceUpdate | null {
  const toDevice = (first<Json[]>(payload, TO_DEVICE) ?? []).filter((m) => m && typeof m === "object" && m["to_user_id"] === userId && m["to_device_id"] === deviceId);
  const lists = first<{ changed?: unknown; left?: unknown }>(payload, DEVICE_LISTS);
  const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : []);
  const changed = strings(lists?.changed);
  const left = strings(lists?.left);
  const keyCounts = first<PerDevice<Record<string, number>>>(payload, KEY_COUNTS)?.[userId]?.[deviceId] ?? null;
  const fallback = first<PerDevice<string[]>>(payload, FALLBACK)?.[userId]?.[deviceId] ?? null;
  if (toDevice.length === 0 && changed.length === 0 && left.length === 0 && keyCounts === null && fallback === null) return null;
  return { toDevice, changed, left, keyCounts, fallback };
}

export class DeviceInbox {
  readonly #db: Database;
  readonly #userId: string;
  readonly #deviceId: string;
  readonly #onStored: () => void;
  /**
   * The key counts and fallback key types this process stored last. Synapse sends them with every
   * transaction, changed or not; a transaction that brings nothing else and the same figures is not
   * stored again (another process may store the same figures once more, which changes nothing).
   */
  #lastFigures = "";

  constructor(db: Database, userId: string, deviceId: string, onStored: () => void) {
    this.#db = db;
    this.#userId = userId;
    this.#deviceId = deviceId;
    this.#onStored = onStored;
  }

  /** The part of transactions the inbox stores with their events. */
  part(): TransactionPart {
    return {
      wants: (payload) => {
        const u = deviceUpdateOf(payload, this.#userId, this.#deviceId);
        if (!u) return false;
        return u.toDevice.length > 0 || u.changed.length > 0 || u.left.length > 0 || figures(u) !== this.#lastFigures;
      },
      store: (tx, txnId, payload) => this.#store(tx, txnId, payload),
      stored: () => this.#onStored(),
    };
  }

  async #store(tx: Queryable, txnId: string, payload: Json): Promise<void> {
    const u = deviceUpdateOf(payload, this.#userId, this.#deviceId);
    if (!u) return;
    await tx.query(`INSERT INTO e2ee_device_inbox (txn_id, to_device, changed, "left", key_counts, fallback) VALUES ($1, $2, $3, $4, $5, $6)`, [
      txnId,
      JSON.stringify(u.toDevice),
      JSON.stringify(u.changed),
      JSON.stringify(u.left),
      u.keyCounts === null ? null : JSON.stringify(u.keyCounts),
      u.fallback === null ? null : JSON.stringify(u.fallback),
    ]);
    this.#lastFigures = figures(u);
  }

  /**
   * Someone joined an encrypted room the bot is in: for its device, their device list changed (as
   * /sync's `device_lists.changed` names "users who now share an encrypted room", CS API
   * §"GET /_matrix/client/v3/sync"; an appservice's transactions report only changes of users who
   * were joined already). So a device a member set up before joining is found before the next key
   * is shared, even when the bot tracked the member before.
   */
  async memberJoined(q: Queryable, userId: string): Promise<void> {
    await q.query(`INSERT INTO e2ee_device_inbox (txn_id, to_device, changed, "left") VALUES ('membership', '[]', $1, '[]')`, [JSON.stringify([userId])]);
  }

  /** A verification event in a room (Element verifies other users in a direct message room), decrypted, for the device. */
  async verificationEvent(q: Queryable, event: Json): Promise<void> {
    await q.query(`INSERT INTO e2ee_device_inbox (txn_id, to_device, changed, "left", room_event) VALUES ('room', '[]', '[]', '[]', $1)`, [JSON.stringify(event)]);
  }

  /**
   * The oldest updates not handed to the device yet, and their numbers. Numbers are taken when a
   * row is inserted, not when it is committed: a transaction's row may commit after a later row
   * (a member's join, stored on its own) was read, so it is read next time, and done() deletes
   * exactly the rows read, never "up to" a number.
   */
  async next(limit = 100): Promise<{ updates: DeviceUpdate[]; seqs: string[] } | null> {
    const { rows } = await this.#db.query<{ seq: string; to_device: Json[]; changed: string[]; left: string[]; key_counts: Record<string, number> | null; fallback: string[] | null; room_event: Json | null }>(
      `SELECT seq, to_device, changed, "left", key_counts, fallback, room_event FROM e2ee_device_inbox ORDER BY seq LIMIT $1`,
      [limit],
    );
    if (rows.length === 0) return null;
    return {
      updates: rows.map((r) => ({ toDevice: r.to_device, changed: r.changed, left: r.left, keyCounts: r.key_counts, fallback: r.fallback, ...(r.room_event ? { roomEvent: r.room_event } : {}) })),
      seqs: rows.map((r) => r.seq),
    };
  }

  /** Deletes what the device has (saved) now. */
  async done(seqs: string[]): Promise<void> {
    await this.#db.query("DELETE FROM e2ee_device_inbox WHERE seq = ANY($1::bigint[])", [seqs]);
  }
}
