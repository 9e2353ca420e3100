// Files posted in an organisation room (by clerks, or by staff) are recorded for scanning
// the moment their event is handled; the document worker does the rest.
import { audit } from "../audit/audit.ts";
import type { Database } from "../db/database.ts";
import type { MatrixEvent, RoomEventHandler } from "../matrix/events.ts";
import type { RoomContext } from "../rooms.ts";
import { newDocumentId } from "./model.ts";
import * as store from "./store.ts";

const fileMessageTypes = new Set(["m.file", "m.image", "m.video", "m.audio"]);

/** A name fit for showing and logging: no path, no control or direction characters. */
function displayName(content: Record<string, unknown>): string {
  const raw = typeof content.filename === "string" ? content.filename : typeof content.body === "string" ? content.body : "file";
  const cleaned = raw.split(/[/\\]/).pop()!.replace(/[\u0000-\u001F\u007F-\u009F\u200E\u200F\u202A-\u202E\u2066-\u2069]/gu, "").trim();
  return cleaned.slice(0, 200) || "file";
}

export class InboundFiles implements RoomEventHandler<RoomContext> {
  readonly name = "inbound-files";
  readonly #db: Database;
  readonly #onWork: () => void;
  readonly #switchedOff: ((roomId: string, eventId: string) => Promise<void>) | undefined;

  /** With `switchedOff`, scanning of posted files is off (modules.inboundScanning): Kuvert only says so. */
  constructor(db: Database, onWork: () => void, switchedOff?: (roomId: string, eventId: string) => Promise<void>) {
    this.#db = db;
    this.#onWork = onWork;
    this.#switchedOff = switchedOff;
  }

  async onEvent(event: MatrixEvent, ctx: RoomContext): Promise<void> {
    if (event.type !== "m.room.message" || !ctx.organisation) return;
    const msgtype = event.content.msgtype;
    if (typeof msgtype !== "string" || !fileMessageTypes.has(msgtype)) return;
    const url = event.content.url;
    if (typeof url !== "string" || !url.startsWith("mxc://")) return;
    if (this.#switchedOff) return this.#switchedOff(event.room_id, event.event_id);
    const info = (event.content.info ?? {}) as { size?: unknown; mimetype?: unknown };
    const id = newDocumentId();
    const organisationId = ctx.organisation.id;
    const inserted = await this.#db.transaction(async (tx) => {
      // The event id is unique: a replayed event records nothing new.
      const ok = await store.insertDocument(tx, {
        id,
        direction: "inbound",
        organisationId,
        source: "room",
        submittedBy: event.sender,
        filename: displayName(event.content),
        kind: msgtype,
        reference: null,
        mimetype: typeof info.mimetype === "string" ? info.mimetype.slice(0, 100) : null,
        size: typeof info.size === "number" && Number.isSafeInteger(info.size) && info.size >= 0 ? info.size : 0,
        sha256: null,
        roomEventId: event.event_id,
        sourceMxc: url,
      });
      if (ok) await audit(tx, { actor: event.sender, action: "inbound.received", organisationId, object: id, outcome: "ok", details: { eventId: event.event_id, msgtype } });
      return ok;
    });
    if (inserted) this.#onWork();
  }
}
