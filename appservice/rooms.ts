// Dispatch of room events to the features that react to them (one interface, no branch per feature).
import type { Database } from "./db/database.ts";
import { logger } from "./log.ts";
import type { MatrixEvent, RoomEventHandler } from "./matrix/events.ts";
import { findOrganisationByRoom, type StoredOrganisation } from "./organisations/store.ts";
import { isStaffRoom } from "./staff/staffroom.ts";

const log = logger("rooms");

export interface RoomContext {
  /** The organisation whose room this is, or null for a room Kuvert does not manage. */
  organisation: StoredOrganisation | null;
  /** Whether this is Kuvert's staff room. */
  staffRoom: boolean;
}

export class RoomEventRouter {
  readonly #db: Database;
  readonly #handlers: RoomEventHandler<RoomContext>[];

  constructor(db: Database, handlers: RoomEventHandler<RoomContext>[]) {
    this.#db = db;
    this.#handlers = handlers;
  }

  async dispatch(event: MatrixEvent): Promise<void> {
    const organisation = await findOrganisationByRoom(this.#db, event.room_id);
    const staffRoom = !organisation && (await isStaffRoom(this.#db, event.room_id));
    const context: RoomContext = { organisation, staffRoom };
    for (const handler of this.#handlers) {
      log.debug({ handler: handler.name, type: event.type, eventId: event.event_id }, "dispatch");
      await handler.onEvent(event, context);
    }
  }
}
