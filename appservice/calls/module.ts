// Video consultations as a Kuvert module: the service and its worker, `!video`, the staff API,
// the guest page, Jitsi's /verify and the members' call link; retention of ended calls and guest links.
import express from "express";
import { defineModule, type ModuleContext } from "../module.ts";
import { callPaths, callSchemas } from "./openapi.ts";
import { callRoutes, guestRoutes } from "./api.ts";
import { videoCommand } from "./command.ts";
import { MemberLinks, memberLinkRoutes } from "./member-link.ts";
import { Calls } from "./service.ts";
import { UserVerification, verifyRoutes } from "./verify.ts";
import { callsSubject } from "./subject.ts";
import { CallErr } from "./errors.ts";
import { callsConfig } from "./config.ts";

declare module "../module.ts" {
  interface ModuleServices {
    calls: Calls;
  }
}

/** The staff API under /api/v1 (staff or admin tokens, or a console session). */
function staffApi(ctx: ModuleContext, calls: Calls | null): express.Router {
  return express.Router().use("/api/v1", callRoutes(calls, ctx.requireScope("staff", "admin")));
}

export const callsModule = defineModule({
  name: "calls",
  config: callsConfig,
  subject: callsSubject,
  queues: { calls: "calls" },
  errors: CallErr,
  openApi: { schemas: () => callSchemas, paths: (t) => callPaths(t.baseUrl) },
  start(ctx) {
    const { db, homeserver, config } = ctx;
    const calls: Calls = new Calls(db, homeserver, config, () => worker.wake());
    const worker = calls.worker();
    const verification = new UserVerification(db, homeserver, config, ctx.openIdPurposes);
    // The members' call link page lives in the console and needs guest tokens.
    const memberLinks = config.modules.console && config.calls.appSecret ? new MemberLinks(db, calls, verification, ctx.openIdPurposes, config) : null;
    return {
      service: calls,
      publicRoutes: [staffApi(ctx, calls), guestRoutes(calls), verifyRoutes(verification, config), memberLinkRoutes(memberLinks, config)],
      commands: [videoCommand(calls, config)],
      workers: [worker],
    };
  },
  // Switched off: the API and the pages answer KUVERT_MODULE_NOT_LOADED; `!video` is unknown; /verify is not there.
  whenOff: (ctx) => ({ publicRoutes: [staffApi(ctx, null), guestRoutes(null), memberLinkRoutes(null, ctx.config)] }),
  retention: [
    // Guest links hold a guest's name and address: kept as long as e-mails.
    { count: "guestLinks", run: async (q, cut) => (await q.query("DELETE FROM guest_links WHERE expires_at < $1", [cut.mail])).rowCount },
    // Calls, like documents; a call goes only after its guest links.
    {
      count: "calls",
      run: async (q, cut) => (await q.query("DELETE FROM calls c WHERE state IN ('done', 'failed') AND ended_at < $1 AND NOT EXISTS (SELECT 1 FROM guest_links g WHERE g.call_id = c.id)", [cut.documents])).rowCount,
    },
  ],
});
