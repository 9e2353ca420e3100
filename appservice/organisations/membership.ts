// Follows membership in organisation rooms: clerks' invite state, and Kuvert itself being
// kicked or banned (the room is then reported lost). Follows power levels: a change by anyone
// but Kuvert brings the room back in line as it arrives.
import type { Database } from "../db/database.ts";
import type { MatrixEvent, RoomEventHandler } from "../matrix/events.ts";
import type { RoomContext } from "../rooms.ts";
import * as store from "./store.ts";
import type { RoomSync } from "./sync.ts";

export class MembershipObserver implements RoomEventHandler<RoomContext> {
  readonly name = "membership";
  readonly #db: Database;
  readonly #botUserId: string;
  readonly #roomSync: RoomSync;

  constructor(db: Database, botUserId: string, roomSync: RoomSync) {
    this.#db = db;
    this.#botUserId = botUserId;
    this.#roomSync = roomSync;
  }

  async onEvent(event: MatrixEvent, ctx: RoomContext): Promise<void> {
    if (event.type !== "m.room.member" || event.state_key === undefined || !ctx.organisation) return;
    const membership = typeof event.content.membership === "string" ? event.content.membership : null;
    if (event.state_key === this.#botUserId) {
      if (membership === "leave" || membership === "ban") {
        const how = membership === "ban" ? "banned" : "removed";
        await this.#roomSync.markLost(ctx.organisation.id, event.room_id, `Kuvert was ${how} from the room by ${event.sender}.`);
      }
      return;
    }
    await store.setClerkMembership(this.#db, ctx.organisation.id, event.state_key, membership);
  }
}

/** `m.room.power_levels` changed by someone else in an organisation room: the room is synced now, not at its next unrelated change. */
export class PowerLevelsObserver implements RoomEventHandler<RoomContext> {
  readonly name = "power-levels";
  readonly #db: Database;
  readonly #botUserId: string;
  readonly #wake: () => void;

  constructor(db: Database, botUserId: string, wake: () => void) {
    this.#db = db;
    this.#botUserId = botUserId;
    this.#wake = wake;
  }

  async onEvent(event: MatrixEvent, ctx: RoomContext): Promise<void> {
    if (event.type !== "m.room.power_levels" || event.state_key !== "" || event.sender === this.#botUserId || !ctx.organisation) return;
    await store.requestRoomSync(this.#db, ctx.organisation.id);
    this.#wake();
  }
}
