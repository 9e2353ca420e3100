// The staff console as a Kuvert module: its pages at /console/, the session cookie read before
// every other API route (so that the modules after it and the admin API see console sessions),
// and its own endpoints (sign-in, status, audit). First in the module list for that reason.
import { resolve } from "node:path";
import express from "express";
import { defineModule, type ModuleContext, type ModuleParts } from "../module.ts";
import { consolePaths, consoleSecurityScheme } from "./openapi.ts";
import { consoleApiRoutes, consoleSessionLookup, consolePages, defaultConsoleDir } from "./api.ts";
import { ConsoleSessions } from "./sessions.ts";
import { consoleSubject } from "./subject.ts";
import { consoleConfig } from "./config.ts";

declare module "../module.ts" {
  interface ModuleServices {
    console: ConsoleSessions;
  }
}

/**
 * Switched off, the console keeps its routes: /console/ says it is off and sign-in answers
 * KUVERT_MODULE_DISABLED, and no session cookie is read.
 */
function consoleParts(ctx: ModuleContext, enabled: boolean): ModuleParts<"console"> {
  const { db, config } = ctx;
  const deps = {
    enabled,
    sessions: new ConsoleSessions(db, config, ctx.openIdPurposes),
    staticDir: config.console.staticDir ? resolve(config.console.staticDir) : defaultConsoleDir,
    homeserverUrl: config.homeserver.publicUrl ?? config.homeserver.url,
    serverName: config.homeserver.domain,
    language: config.organisations.language,
    maxHours: config.console.maxHours,
    signInAttemptsPerMinute: config.console.signInAttemptsPerMinute,
    queues: ctx.queues,
    wakeMail: ctx.wakeMail,
  };
  const routes = express.Router();
  routes.use("/console", consolePages(deps));
  routes.use("/api", consoleSessionLookup(deps));
  routes.use("/api/v1", consoleApiRoutes(db, deps, ctx.readiness, ctx.requireScope));
  return { ...(enabled ? { service: deps.sessions } : {}), publicRoutes: [routes] };
}

export const consoleModule = defineModule({
  name: "console",
  config: consoleConfig,
  subject: consoleSubject,
  openApi: { securitySchemes: { session: consoleSecurityScheme }, paths: () => consolePaths },
  start: (ctx) => consoleParts(ctx, true),
  whenOff: (ctx) => consoleParts(ctx, false),
});
