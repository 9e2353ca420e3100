// Commands typed into organisation rooms (`!help`, …). Replies are sent with a transaction
// id derived from the command's event, so handling a command twice replies once.
import type { KuvertConfig } from "../config/schema.ts";
import { notice, texts } from "../i18n.ts";
import type { MatrixEvent, RoomEventHandler } from "../matrix/events.ts";
import type { Homeserver } from "../matrix/homeserver.ts";
import type { RoomContext } from "../rooms.ts";

export interface Command {
  readonly name: string;
  run(args: string[], event: MatrixEvent, ctx: RoomContext): Promise<{ body: string; html?: string }>;
}

/** Reply content that Element shows as a reply (CS API §"Rich replies"). */
export function replyTo(event: MatrixEvent, message: { body: string; html?: string }): Record<string, unknown> {
  return { ...notice(message), "m.relates_to": { "m.in_reply_to": { event_id: event.event_id } } };
}

export function parseCommand(body: string): { name: string; args: string[] } | null {
  const trimmed = body.trim();
  if (!trimmed.startsWith("!") || trimmed.length < 2) return null;
  const [name, ...args] = trimmed.slice(1).split(/\s+/);
  return { name: name!.toLowerCase(), args };
}

export class CommandHandler implements RoomEventHandler<RoomContext> {
  readonly name = "commands";
  readonly #hs: Homeserver;
  readonly #config: KuvertConfig;
  readonly #commands = new Map<string, Command>();

  constructor(hs: Homeserver, config: KuvertConfig, commands: Command[]) {
    this.#hs = hs;
    this.#config = config;
    for (const c of commands) this.#commands.set(c.name, c);
  }

  async onEvent(event: MatrixEvent, ctx: RoomContext): Promise<void> {
    if (event.type !== "m.room.message" || !ctx.organisation) return;
    if (event.content.msgtype !== "m.text" || typeof event.content.body !== "string") return;
    if (event.content["m.relates_to"] && (event.content["m.relates_to"] as { rel_type?: string }).rel_type === "m.replace") return;
    const parsed = parseCommand(event.content.body);
    if (!parsed) return;
    const command = this.#commands.get(parsed.name);
    const t = texts(this.#config.organisations.language);
    const reply = command ? await command.run(parsed.args, event, ctx) : { body: t.unknownCommand(`!${parsed.name}`) };
    await this.#hs.send(event.room_id, "m.room.message", replyTo(event, reply), `reply:${event.event_id}`);
  }
}

export function helpCommand(config: KuvertConfig): Command {
  return { name: "help", run: async () => texts(config.organisations.language).help() };
}
