// Which rooms are end-to-end encrypted. Learned once per room from its m.room.encryption state
// (CS API §"m.room.encryption"), then from the room's events as transactions bring them; kept in
// e2ee_rooms so that every Kuvert process knows the same. Encryption is never switched off in a room.
import type { Database, Queryable } from "../db/database.ts";
import type { Homeserver } from "../matrix/homeserver.ts";
import { encryptionState } from "../organisations/room.ts";

export class EncryptedRooms {
  readonly #db: Database;
  readonly #hs: Homeserver;
  /** Rooms known to be encrypted: that never changes, so it is kept for good. */
  readonly #encrypted = new Set<string>();

  constructor(db: Database, hs: Homeserver) {
    this.#db = db;
    this.#hs = hs;
  }

  /**
   * Whether the room is encrypted. A room not known yet is asked of the homeserver once; a room
   * known as unencrypted is read from the table each time, as another process may have learned
   * otherwise since (one indexed query beside a send).
   */
  async isEncrypted(roomId: string): Promise<boolean> {
    if (this.#encrypted.has(roomId)) return true;
    const { rows } = await this.#db.query<{ encrypted: boolean }>("SELECT encrypted FROM e2ee_rooms WHERE room_id = $1", [roomId]);
    if (rows[0]) {
      if (rows[0].encrypted) this.#encrypted.add(roomId);
      return rows[0].encrypted;
    }
    const state = await this.#hs.stateEvent(roomId, "m.room.encryption");
    const algorithm = typeof state?.["algorithm"] === "string" ? state["algorithm"] : null;
    await this.learn(this.#db, roomId, algorithm);
    return algorithm !== null;
  }

  /** Records what the room's m.room.encryption state says (null: the room has none). */
  async learn(q: Queryable, roomId: string, algorithm: string | null): Promise<void> {
    await q.query(
      `INSERT INTO e2ee_rooms (room_id, encrypted, algorithm) VALUES ($1, $2, $3)
       ON CONFLICT (room_id) DO UPDATE SET encrypted = e2ee_rooms.encrypted OR EXCLUDED.encrypted,
         algorithm = coalesce(EXCLUDED.algorithm, e2ee_rooms.algorithm), learned_at = now()`,
      [roomId, algorithm !== null, algorithm],
    );
    if (algorithm !== null) this.#encrypted.add(roomId);
  }

  /** Switches the room to end-to-end encryption (one way: the spec has no way back). */
  async encrypt(roomId: string): Promise<void> {
    await this.#hs.sendState(roomId, encryptionState.type, encryptionState.state_key, encryptionState.content);
    await this.learn(this.#db, roomId, encryptionState.content.algorithm);
  }
}
