// Commands typed into rooms (`!help`, …): organisation rooms and the staff room each have
// their own set. Replies are sent with a transaction id derived from the command's event,
// so handling a command twice replies once.
import { roleHolders, type KuvertConfig, type Role } from "../config/schema.ts";
import { escapeHtml, notice, texts, type Language } from "../i18n.ts";
import type { MatrixEvent, RoomEventHandler } from "../matrix/events.ts";
import type { Homeserver } from "../matrix/homeserver.ts";
import type { RoomContext } from "../rooms.ts";

export type RoomKind = "organisation" | "staff";

export interface Reply {
  body: string;
  html?: string;
}

export interface Command {
  /** The word after `!`, lower case. */
  readonly name: string;
  /** Where the command can be used. */
  readonly rooms: readonly RoomKind[];
  /** Configured roles allowed to use it (admin includes staff); absent: every member of the room. */
  readonly roles?: readonly Role[];
  /** One line per usage for `!help`: `[usage, what it does]`. */
  help(language: Language): [string, string][];
  run(args: string[], event: MatrixEvent, ctx: RoomContext): Promise<Reply>;
}

/** Reply content that Element shows as a reply (CS API §"Rich replies"). */
export function replyTo(event: MatrixEvent, message: Reply): Record<string, unknown> {
  return { ...notice(message), "m.relates_to": { "m.in_reply_to": { event_id: event.event_id } } };
}

export function parseCommand(body: string): { name: string; args: string[] } | null {
  const trimmed = body.trim();
  if (!trimmed.startsWith("!") || trimmed.length < 2) return null;
  const [name, ...args] = trimmed.slice(1).split(/\s+/);
  return { name: name!.toLowerCase(), args };
}

export function roomKind(ctx: RoomContext): RoomKind | null {
  return ctx.organisation ? "organisation" : ctx.staffRoom ? "staff" : null;
}

export class CommandHandler implements RoomEventHandler<RoomContext> {
  readonly name = "commands";
  readonly #hs: Homeserver;
  readonly #config: KuvertConfig;
  readonly #commands: Command[];

  constructor(hs: Homeserver, config: KuvertConfig, commands: Command[]) {
    this.#hs = hs;
    this.#config = config;
    this.#commands = [helpCommand(config, () => this.#commands), ...commands];
  }

  async onEvent(event: MatrixEvent, ctx: RoomContext): Promise<void> {
    const kind = roomKind(ctx);
    if (!kind || event.type !== "m.room.message") return;
    if (event.content.msgtype !== "m.text" || typeof event.content.body !== "string") return;
    if ((event.content["m.relates_to"] as { rel_type?: string } | undefined)?.rel_type === "m.replace") return;
    const parsed = parseCommand(event.content.body);
    if (!parsed) return;
    const reply = await this.#answer(parsed, event, ctx, kind);
    await this.#hs.send(event.room_id, "m.room.message", replyTo(event, reply), `reply:${event.event_id}`);
  }

  async #answer(parsed: { name: string; args: string[] }, event: MatrixEvent, ctx: RoomContext, kind: RoomKind): Promise<Reply> {
    const t = texts(this.#config.organisations.language);
    const command = this.#commands.find((c) => c.name === parsed.name);
    if (!command) return { body: t.unknownCommand(`!${parsed.name}`) };
    if (!command.rooms.includes(kind)) return { body: t.wrongRoom(`!${parsed.name}`, command.rooms.includes("staff")) };
    if (command.roles && !roleHolders(this.#config, command.roles).includes(event.sender)) {
      return { body: t.notAllowed(`!${parsed.name}`) };
    }
    return command.run(parsed.args, event, ctx);
  }
}

/** `!help`: the commands of this kind of room that the sender may use. */
function helpCommand(config: KuvertConfig, commands: () => Command[]): Command {
  const language = config.organisations.language;
  return {
    name: "help",
    rooms: ["organisation", "staff"],
    help: (lang) => [["!help", texts(lang).helpSelf]],
    run: async (_args, event, ctx) => {
      const kind = roomKind(ctx)!;
      const lines = commands()
        .filter((c) => c.rooms.includes(kind) && (!c.roles || roleHolders(config, c.roles).includes(event.sender)))
        .flatMap((c) => c.help(language));
      const t = texts(language);
      const intro = t.helpIntro;
      const outro = kind === "organisation" ? t.helpUpload : undefined;
      return {
        body: [intro, ...lines.map(([usage, what]) => `${usage} – ${what}`), ...(outro ? ["", outro] : [])].join("\n"),
        html: `<p>${escapeHtml(intro)}</p><ul>${lines.map(([usage, what]) => `<li><code>${escapeHtml(usage)}</code> – ${escapeHtml(what)}</li>`).join("")}</ul>` + (outro ? `<p>${escapeHtml(outro)}</p>` : ""),
      };
    },
  };
}
