// Media posted in an organisation room (by clerks, or by staff) is recorded for scanning the
// moment its event is handled; the document worker does the rest. Not only files: every
// event that references media (a sticker, a thumbnail, an edit's new file, an encrypted
// attachment, an image in a message's HTML) is one inbound document, and all its media are
// scanned together (appservice/matrix/references.ts says which).
import { audit } from "../audit/audit.ts";
import type { Database } from "../db/database.ts";
import type { MatrixEvent, RoomEventHandler } from "../matrix/events.ts";
import { mediaReferences } from "../matrix/references.ts";
import type { RoomContext } from "../rooms.ts";
import { newDocumentId } from "./model.ts";
import * as store from "./store.ts";

/** Events whose media is a file with a name of its own; media in other messages (images in HTML) is named by its kind. */
export const fileKinds: ReadonlySet<string> = new Set(["m.file", "m.image", "m.video", "m.audio", "m.sticker"]);

/** The kind recorded for an event: its msgtype, or the event type where there is none (m.sticker). */
function kindOf(event: MatrixEvent): string {
  const msgtype = event.content.msgtype;
  return event.type === "m.room.message" && typeof msgtype === "string" ? msgtype.slice(0, 100) : event.type;
}

/** A name fit for showing and logging: no path, no control or direction characters. */
function displayName(content: Record<string, unknown>): string {
  const raw = typeof content.filename === "string" ? content.filename : typeof content.body === "string" ? content.body : "file";
  const cleaned = raw
    .split(/[/\\]/)
    .pop()!
    .replace(/[\u0000-\u001F\u007F-\u009F\u200E\u200F\u202A-\u202E\u2066-\u2069]/gu, "")
    .trim();
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
    if (!ctx.organisation) return;
    const media = mediaReferences(event);
    if (media.length === 0) return;
    if (this.#switchedOff) return this.#switchedOff(event.room_id, event.event_id);
    const kind = kindOf(event);
    const isFile = fileKinds.has(kind);
    const info = (isFile && typeof event.content.info === "object" && event.content.info !== null ? event.content.info : {}) as { size?: unknown; mimetype?: unknown };
    const id = newDocumentId();
    const organisationId = ctx.organisation.id;
    const inserted = await this.#db.transaction(async (tx) => {
      // The event id is unique: a replayed event records nothing new.
      const row = await store.insertDocument(tx, {
        id,
        direction: "inbound",
        organisationId,
        source: "room",
        submittedBy: event.sender,
        // Media in other messages has no name of its own; texts show it by its kind.
        filename: isFile ? displayName(event.content) : "message",
        kind,
        reference: null,
        mimetype: typeof info.mimetype === "string" ? info.mimetype.slice(0, 100) : null,
        size: typeof info.size === "number" && Number.isSafeInteger(info.size) && info.size >= 0 ? info.size : 0,
        sha256: null,
        roomEventId: event.event_id,
        sourceMxc: media[0]!.mxc.slice(0, 1000),
        media,
      });
      if (row) {
        await audit(tx, {
          actor: event.sender,
          action: "inbound.received",
          organisationId,
          object: id,
          outcome: "ok",
          details: { eventId: event.event_id, msgtype: kind, media: media.map((m) => ({ path: m.path, encrypted: m.encrypted !== undefined })) },
        });
      }
      return row !== null;
    });
    if (inserted) this.#onWork();
  }
}
