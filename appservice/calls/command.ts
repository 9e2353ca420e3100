// `!video` and `!video end` in organisation rooms: clerks and staff start and end calls.
import type { Command, Reply } from "../commands/commands.ts";
import type { KuvertConfig } from "../config/schema.ts";
import { ErrCode, KuvertError } from "../errors.ts";
import { logger } from "../log.ts";
import { PowerLevelRefusal, type Calls } from "./service.ts";
import { callTexts } from "./texts.ts";
import { CallErr } from "./errors.ts";

const log = logger("calls");

export function videoCommand(calls: Calls, config: KuvertConfig): Command {
  const t = callTexts(config.organisations.language);
  return {
    name: "video",
    rooms: ["organisation"],
    help: (lang) => [
      ["!video", callTexts(lang).helpVideo],
      ["!video end", callTexts(lang).helpVideoEnd],
    ],
    run: async (args, event, ctx): Promise<Reply> => {
      const org = ctx.organisation!;
      const sub = (args[0] ?? "").toLowerCase();
      try {
        if (sub === "") {
          const { call, reused } = await calls.start(org.id, event.sender, { sender: event.sender, announce: false });
          const until = new Date(call.expiresAt);
          if (!call.widgetPosted) return { body: t.pending };
          const link = calls.memberLinkUrl(call.id);
          return reused ? t.reused(until, link) : t.started(until, link);
        }
        if (sub === "end" || sub === "ende" || sub === "stop") {
          await calls.end(org.id, event.sender, { announce: false });
          return { body: t.ended };
        }
        return { body: t.usage };
      } catch (err) {
        if (err instanceof PowerLevelRefusal) return { body: t.permission(err.problems) };
        if (err instanceof KuvertError) {
          if (err.errcode === CallErr.NoCall) return { body: t.noCall };
          if (err.errcode === ErrCode.Archived) return { body: t.archived };
          if (err.errcode === CallErr.RoomNotReady) return { body: t.roomNotReady };
          if (err.errcode === CallErr.NotConfigured) return { body: t.notConfigured };
        }
        log.error({ err, room: event.room_id }, "!video failed");
        return { body: t.failed };
      }
    },
  };
}
