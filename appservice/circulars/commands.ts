// Circulars from the staff room, as staff use Element: upload the attachments (if any) into
// the staff room, then send one message whose first line is the command and whose lines below
// are the text. Element sends a multi-line message as one event, Markdown and all:
//
//   !circular tag:schools
//   # Closing days over Christmas
//   The office is closed from **24 December** to 1 January.
//
// Files the same person posted in the staff room in the circulars.attachmentWindowMinutes
// before the command, and not yet taken by another circular, are its attachments. Files in the
// staff room are not documents for an organisation: the circular downloads and scans them.
import type { KuvertConfig } from "../config/schema.ts";
import type { Database } from "../db/database.ts";
import { ErrCode, KuvertError } from "../errors.ts";
import type { Command, Reply } from "../commands/commands.ts";
import type { MatrixEvent, RoomEventHandler } from "../matrix/events.ts";
import type { RoomContext } from "../rooms.ts";
import { roleHolders } from "../config/schema.ts";
import { parseCircularCommand, type Targets } from "./model.ts";
import type { AttachmentInput, CircularStatus, Circulars } from "./service.ts";
import { circularTexts, linesMessage } from "./texts.ts";
import { CircularErr } from "./errors.ts";
import * as store from "./store.ts";

const fileMessageTypes = new Set(["m.file", "m.image", "m.video", "m.audio"]);

function cleanName(content: Record<string, unknown>): string {
  const raw = typeof content.filename === "string" ? content.filename : typeof content.body === "string" ? content.body : "file";
  return (
    raw
      .split(/[/\\]/)
      .pop()!
      .replace(/[\u0000-\u001F\u007F-\u009F\u200E\u200F\u202A-\u202E\u2066-\u2069]/gu, "")
      .trim()
      .slice(0, 200) || "file"
  );
}

/** Records files staff post in the staff room, for the next !circular of the same person. */
export class StaffRoomFiles implements RoomEventHandler<RoomContext> {
  readonly name = "circular-files";
  readonly #db: Database;
  readonly #config: KuvertConfig;

  constructor(db: Database, config: KuvertConfig) {
    this.#db = db;
    this.#config = config;
  }

  async onEvent(event: MatrixEvent, ctx: RoomContext): Promise<void> {
    if (!ctx.staffRoom || event.type !== "m.room.message" || !this.#config.modules.circulars) return;
    const msgtype = event.content.msgtype;
    if (typeof msgtype !== "string" || !fileMessageTypes.has(msgtype)) return;
    // In an encrypted staff room the file is an encrypted attachment (`file`, decrypted from the event by e2ee).
    const file = typeof event.content.file === "object" && event.content.file !== null ? (event.content.file as Record<string, unknown>) : null;
    const url = file ? file["url"] : event.content.url;
    if (typeof url !== "string" || !/^mxc:\/\/[^/]+\/[A-Za-z0-9_-]+$/.test(url)) return;
    if (!roleHolders(this.#config, ["staff"]).includes(event.sender)) return;
    const info = (event.content.info ?? {}) as { size?: unknown; mimetype?: unknown };
    const size = typeof info.size === "number" && Number.isSafeInteger(info.size) && info.size >= 0 ? info.size : 0;
    const mimetype = typeof info.mimetype === "string" ? info.mimetype.toLowerCase().slice(0, 100) : "application/octet-stream";
    await store.recordStaffFile(this.#db, { eventId: event.event_id, roomId: event.room_id, sender: event.sender, mxc: url, file, filename: cleanName(event.content), mimetype, size, postedAt: event.origin_server_ts });
  }
}

/** `!circular` in the staff room; with `circulars` null (modules.circulars off) it says it is switched off. */
export function circularCommand(db: Database, config: KuvertConfig, circulars: Circulars | null): Command {
  const language = config.organisations.language;
  const t = circularTexts(language);

  const errorReply = (err: unknown, targets?: Targets): Reply => {
    if (!(err instanceof KuvertError)) throw err;
    let message = err.message;
    if (language === "de") {
      switch (err.errcode) {
        case CircularErr.Empty:
          message = "Das Rundschreiben hat keinen Text. Schreiben Sie ihn in die Zeilen unter dem Befehl.";
          break;
        case CircularErr.UnknownTag:
          message = `Keine aktive Organisation hat das Tag „${targets && "tag" in targets ? targets.tag : "?"}“.`;
          break;
        case CircularErr.UnknownOrganisations:
          message = `Unbekannte Organisationen: ${(err.details ?? []).map((d) => d.message.replace(/^unknown organisation /, "")).join(", ")}.`;
          break;
        case CircularErr.ScheduleInPast:
          message = "Der Zeitpunkt liegt in der Vergangenheit. Ohne at: geht das Rundschreiben sofort hinaus.";
          break;
        case ErrCode.NotFound:
          message = "Dieses Rundschreiben gibt es nicht.";
          break;
        default:
          break;
      }
    }
    if (err.details?.length && err.errcode === ErrCode.InvalidInput) message += ` (${err.details.map((d) => `${d.path}: ${d.message}`).join("; ")})`;
    return { body: t.failed(message) };
  };

  const statusReply = (c: CircularStatus): Reply => {
    const lines = t.progress({ id: c.id, state: c.state, total: c.summary.pending + c.summary.delivered + c.summary.failed, summary: c.summary, corrections: c.corrections, failures: [] });
    const failed = (c.deliveries ?? []).filter((d) => d.state === "failed").slice(0, 20);
    for (const d of failed) lines.push(`– ${d.organisationId}: ${d.reason ?? "?"}`);
    if (c.reason) lines.push(c.reason);
    return linesMessage(lines);
  };

  return {
    name: "circular",
    rooms: ["staff"],
    roles: ["staff"],
    help: (lang) => circularTexts(lang).help,
    run: async (_args, event: MatrixEvent) => {
      if (!circulars) return { body: t.moduleOff };
      const parsed = parseCircularCommand(String(event.content.body));
      const actor = event.sender;
      try {
        switch (parsed.kind) {
          case "error":
            if (parsed.message.startsWith("bad-word:")) return { body: t.badWord(parsed.message.slice("bad-word:".length)) };
            return { body: parsed.message === "no-id" ? t.noId : t.usage };
          case "cancel":
            await circulars.cancel(parsed.id, actor);
            return { body: t.cancelled(parsed.id) };
          case "status": {
            if (parsed.id) {
              const c = await circulars.status(parsed.id);
              if (!c) throw new KuvertError(ErrCode.NotFound, `There is no circular ${parsed.id}.`);
              return statusReply(c);
            }
            const latest = await circulars.list(5);
            if (latest.length === 0) return { body: t.none };
            const lines = latest.flatMap((c) => t.progress({ id: c.id, state: c.state, total: c.summary.pending + c.summary.delivered + c.summary.failed, summary: c.summary, corrections: [], failures: [] }));
            return { body: lines.join("\n") };
          }
          case "correct": {
            const out = await circulars.correct(parsed.id, { text: parsed.text }, actor);
            return { body: t.corrected(parsed.id, out.revision, out.rooms) };
          }
          case "send": {
            const windowStart = event.origin_server_ts - config.circulars.attachmentWindowMinutes * 60_000;
            const files = await store.untakenStaffFiles(db, event.sender, event.room_id, windowStart, event.origin_server_ts);
            const attachments: AttachmentInput[] = files.map((f) => ({ filename: f.filename, mimetype: f.mimetype, size: Number(f.size), sourceMxc: f.mxc, sourceFile: f.file, staffFileEventId: f.event_id }));
            const input = { text: parsed.text, targets: parsed.targets, ...(parsed.scheduledAt !== undefined ? { scheduledAt: parsed.scheduledAt } : {}) };
            try {
              // Handled again after a crash, the command finds its circular and answers the same.
              const { circular } = await circulars.create(input, { author: actor, source: "room", sourceEventId: event.event_id }, attachments);
              const count = circular.summary.pending + circular.summary.delivered + circular.summary.failed;
              return { body: t.created(circular.id, count, circular.attachments.length, parsed.scheduledAt ? circular.scheduledAt : null) };
            } catch (err) {
              return errorReply(err, parsed.targets);
            }
          }
        }
      } catch (err) {
        return errorReply(err);
      }
    },
  };
}
