// The staff console on the public listener: its static pages at /console/, the session
// endpoints, and the API the pages need beyond the admin API (audit log, status, e-mails).
import { existsSync } from "node:fs";
import { join, sep } from "node:path";
import express, { type NextFunction, type Request, type RequestHandler, type Response } from "express";
import { rateLimit } from "express-rate-limit";
import { z } from "zod";
import { audit, verifyAuditLog, type AuditRow } from "../audit/audit.ts";
import { exportAuditLog, type ExportFormat } from "../audit/export.ts";
import type { Database } from "../db/database.ts";
import { ErrCode, KuvertError, parseInput } from "../errors.ts";
import type { Language } from "../i18n.ts";
import { readJson } from "../http/input.ts";
import { actorOf, callerOf, CONSOLE_HEADER } from "../http/auth.ts";
import type { Readiness } from "../health.ts";
import { deadMails, retryDeadMail } from "../mail/store.ts";
import type { Scope } from "../tokens/tokens.ts";
import { BACKGROUND_HEADER, clearedSessionCookie, sessionCookie, sessionIdFromCookie, type ConsoleSessions } from "./sessions.ts";
import { version } from "../version.ts";
import { pickableOrganisations } from "../organisations/store.ts";
import type { AuditEntryView, DeadMail, OrganisationChoice, QueueDepth, StatusView } from "./views.ts";

export interface ConsoleDeps {
  enabled: boolean;
  sessions: ConsoleSessions;
  /** Directory of the built console (index.html and assets/). */
  staticDir: string;
  /** The homeserver as browsers reach it, and its server name. */
  homeserverUrl: string;
  serverName: string;
  /** The console's language when the browser prefers neither German nor English (organisations.language). */
  language: Language;
  maxHours: number;
  signInAttemptsPerMinute: number;
  /** The work queues the status page shows, by name (their tables). */
  queues: Readonly<Record<string, string>>;
  /** Wakes the mail worker after an e-mail was set to be tried again. */
  wakeMail: () => void;
}

/** Where `npm run build:web` puts the console, in this installation. */
export const defaultConsoleDir = join(import.meta.dirname, "..", "..", "web", "console", "dist");

function page(title: string, text: string): string {
  return `<!doctype html><html lang="de"><head><meta charset="utf-8"><title>${title}</title></head><body style="font-family:sans-serif;max-width:40rem;margin:3rem auto;line-height:1.5"><h1>${title}</h1><p>${text}</p></body></html>`;
}

/** Content security policy of the console: its own scripts and styles only; it talks to Kuvert and the homeserver. */
function contentSecurityPolicy(homeserverUrl: string): string {
  const hs = new URL(homeserverUrl).origin;
  return ["default-src 'self'", `connect-src 'self' ${hs}`, "img-src 'self' data:", "style-src 'self'", "script-src 'self'", "object-src 'none'", "base-uri 'none'", "form-action 'self'", "frame-ancestors 'none'"].join("; ");
}

/** /console/: the built pages, settings.json for the browser, or a clear page when there is nothing to serve. */
export function consolePages(deps: ConsoleDeps): express.Router {
  const r = express.Router();
  const csp = contentSecurityPolicy(deps.homeserverUrl);
  r.use((req, res, next) => {
    res.setHeader("Content-Security-Policy", csp);
    if (!deps.enabled) {
      res.status(404).type("html").send(page("Konsole ausgeschaltet / Console switched off", "Die Konsole ist in dieser Kuvert-Installation ausgeschaltet (modules.console). — The staff console is switched off in this Kuvert (modules.console)."));
      return;
    }
    // /console → /console/, so that the pages' relative paths resolve.
    if (req.originalUrl === "/console") {
      res.redirect(301, "/console/");
      return;
    }
    next();
  });
  r.get("/settings.json", (_req, res) => {
    res.setHeader("Cache-Control", "no-store");
    res.json({ homeserverUrl: deps.homeserverUrl, serverName: deps.serverName, language: deps.language, version });
  });
  r.use((req, res, next) => {
    if (existsSync(join(deps.staticDir, "index.html"))) return next();
    res
      .status(503)
      .type("html")
      .send(
        page(
          "Konsole nicht gebaut / Console not built",
          `Die Konsole wurde noch nicht gebaut: <code>npm run build:web</code> (scripts/setup.sh tut das). — The staff console has not been built in this installation: run <code>npm run build:web</code> (scripts/setup.sh does), or set console.staticDir. Looked in ${deps.staticDir.replace(/[<>&]/g, "")}.`,
        ),
      );
  });
  r.use(
    express.static(deps.staticDir, {
      index: "index.html",
      fallthrough: true,
      setHeaders: (res, path) => {
        // Hashed asset names may be cached for long; index.html must not be.
        res.setHeader("Cache-Control", path.includes(`${sep}assets${sep}`) ? "public, max-age=31536000, immutable" : "no-cache");
      },
    }),
  );
  return r;
}

/** Reads the session cookie (when there is no bearer token) before any API route. */
export function consoleSessionLookup(deps: ConsoleDeps): RequestHandler {
  return async (req: Request, _res: Response, next: NextFunction) => {
    if (!deps.enabled || req.headers.authorization) return next();
    const id = sessionIdFromCookie(req.headers.cookie);
    if (!id) return next();
    const found = await deps.sessions.find(id, req.get(BACKGROUND_HEADER) !== "1");
    if (found && "session" in found) req.consoleSession = found.session;
    else if (found) req.consoleSessionEnded = true;
    next();
  };
}

const signInInput = z
  .object({
    access_token: z.string().min(1).max(2000),
    matrix_server_name: z.string().min(1).max(255),
    token_type: z.string().optional(),
    expires_in: z.number().optional(),
  })
  .strict();

const isoTime = (name: string, value: unknown): Date | undefined => {
  if (value === undefined || value === "") return undefined;
  const d = typeof value === "string" ? new Date(value) : new Date(NaN);
  if (Number.isNaN(d.getTime())) throw new KuvertError(ErrCode.InvalidInput, `${name}: expected a time like 2026-11-23 or 2026-11-23T10:00:00Z`, [{ path: name, message: "expected an ISO 8601 time" }]);
  return d;
};

const text = (req: Request, name: string): string | undefined => {
  const v = req.query[name];
  return typeof v === "string" && v !== "" ? v : undefined;
};

function presentAudit(row: AuditRow): AuditEntryView {
  return {
    seq: row.seq,
    at: row.at.toISOString(),
    actor: row.actor,
    action: row.action,
    organisationId: row.organisation_id,
    object: row.object,
    outcome: row.outcome,
    details: row.details,
  };
}

export function consoleApiRoutes(db: Database, deps: ConsoleDeps, readiness: Readiness, requireScope: (...s: Scope[]) => RequestHandler): express.Router {
  const r = express.Router();
  const json = readJson("16kb");
  const enabled = (_req: Request, _res: Response, next: NextFunction) => next(deps.enabled ? undefined : new KuvertError(ErrCode.ModuleDisabled, "The staff console is switched off in this Kuvert (modules.console)."));
  const withHeader = (req: Request, _res: Response, next: NextFunction) => next(req.get(CONSOLE_HEADER) === "1" ? undefined : new KuvertError(ErrCode.ConsoleHeaderMissing, `This request must carry the header ${CONSOLE_HEADER}: 1.`));
  // Failed sign-ins count per address; successful ones do not.
  const signInLimit = rateLimit({
    windowMs: 60_000,
    limit: deps.signInAttemptsPerMinute,
    standardHeaders: "draft-7",
    legacyHeaders: false,
    skipSuccessfulRequests: true,
    requestWasSuccessful: (_req, res) => res.statusCode < 400,
    handler: (_req, _res, next) => next(new KuvertError(ErrCode.RateLimited, "Too many failed sign-ins from this address; try again in a minute.")),
  });

  // --- sessions ---
  r.get("/session", enabled, (req, res) => {
    res.setHeader("Cache-Control", "no-store");
    if (req.consoleSession) res.json({ signedIn: true, session: req.consoleSession });
    else res.json({ signedIn: false, ...(req.consoleSessionEnded ? { ended: true } : {}) });
  });

  r.post("/session", enabled, withHeader, signInLimit, ...json, async (req, res) => {
    if (!req.is("application/json")) throw new KuvertError(ErrCode.UnsupportedMediaType, "Send the OpenID token as application/json.");
    const input = parseInput(signInInput, req.body);
    const { id, session } = await deps.sessions.signIn({ accessToken: input.access_token, matrixServerName: input.matrix_server_name }, { address: req.ip, userAgent: req.get("user-agent") });
    res.setHeader("Set-Cookie", sessionCookie(id, deps.maxHours * 3600));
    res.setHeader("Cache-Control", "no-store");
    res.status(201).json({ signedIn: true, session });
  });

  r.delete("/session", enabled, withHeader, async (req, res) => {
    const id = sessionIdFromCookie(req.headers.cookie);
    const ended = id ? await deps.sessions.signOut(id) : false;
    res.setHeader("Set-Cookie", clearedSessionCookie());
    res.json({ signedIn: false, ended });
  });

  // --- organisations to pick from (staff deliver documents too, without the admin API) ---
  r.get("/console/organisations", requireScope("admin", "staff", "drop"), async (req, res) => {
    const caller = callerOf(req);
    const search = text(req, "search");
    const rows = await pickableOrganisations(db, search ?? null, caller.scopes.includes("admin") ? null : caller.organisations);
    res.json({ organisations: rows.map((o): OrganisationChoice => ({ id: o.id, name: o.display_name, tags: o.tags, state: o.state, roomState: o.room_state })) });
  });

  // --- audit log (dpo, admin) ---
  const auditReaders = requireScope("audit", "admin");
  r.get("/audit", auditReaders, async (req, res) => {
    const from = isoTime("from", req.query.from);
    const to = isoTime("to", req.query.to);
    const before = text(req, "before");
    if (before !== undefined && !/^\d{1,18}$/.test(before)) throw new KuvertError(ErrCode.InvalidInput, "before: expected a row number (seq)");
    const limit = Number(text(req, "limit") ?? 100);
    if (!Number.isInteger(limit) || limit < 1 || limit > 500) throw new KuvertError(ErrCode.InvalidInput, "limit: expected a whole number from 1 to 500");
    const action = text(req, "action");
    // "organisation.*" matches every action that starts with "organisation.".
    const actionPrefix = action?.endsWith("*") ? action.slice(0, -1) : null;
    const { rows } = await db.query<AuditRow>(
      `SELECT * FROM audit_log
        WHERE ($1::bigint IS NULL OR seq < $1)
          AND ($2::timestamptz IS NULL OR at >= $2) AND ($3::timestamptz IS NULL OR at < $3)
          AND ($4::text IS NULL OR actor = $4)
          AND ($5::text IS NULL OR organisation_id = $5)
          AND ($6::text IS NULL OR action = $6) AND ($7::text IS NULL OR left(action, length($7)) = $7)
        ORDER BY seq DESC LIMIT $8`,
      [before ?? null, from ?? null, to ?? null, text(req, "actor") ?? null, text(req, "organisation") ?? null, actionPrefix === null ? (action ?? null) : null, actionPrefix, limit + 1],
    );
    const page = rows.slice(0, limit);
    res.json({ entries: page.map(presentAudit), next: rows.length > limit ? page[page.length - 1]!.seq : null });
  });

  r.get("/audit/export", auditReaders, async (req, res) => {
    const format = (text(req, "format") ?? "csv") as ExportFormat;
    if (format !== "csv" && format !== "jsonl") throw new KuvertError(ErrCode.InvalidInput, "format: expected csv or jsonl");
    const from = isoTime("from", req.query.from);
    const to = isoTime("to", req.query.to);
    // Handing the log out is recorded before it is handed out.
    await db.transaction((tx) => audit(tx, { actor: actorOf(req), action: "audit.exported", outcome: "ok", details: { format, from: from?.toISOString() ?? null, to: to?.toISOString() ?? null } }));
    const stamp = new Date().toISOString().slice(0, 10);
    res.setHeader("Content-Type", format === "csv" ? "text/csv; charset=utf-8" : "application/x-ndjson; charset=utf-8");
    res.setHeader("Content-Disposition", `attachment; filename="kuvert-audit-${stamp}.${format}"`);
    res.setHeader("Cache-Control", "no-store");
    await exportAuditLog(db, { from, to, format }, (chunk) => {
      if (!res.write(chunk)) return new Promise<void>((resolve) => res.once("drain", () => resolve()));
    });
    res.end();
  });

  r.post("/audit/verify", auditReaders, async (req, res) => {
    const result = await verifyAuditLog(db);
    await db.transaction((tx) => audit(tx, { actor: actorOf(req), action: "audit.verified", outcome: "ok", details: { intact: result.ok, rows: result.rows, brokenAt: result.brokenAt ?? null } }));
    res.json(result);
  });

  // --- status (admin) ---
  const admins = requireScope("admin");
  r.get("/status", admins, async (_req, res) => {
    const health = await readiness.check();
    const depths = await Promise.all(
      Object.entries(deps.queues).map(async ([queue, table]) => {
        const { rows } = await db.query<{ pending: string; failed: string; oldest: Date | null }>(
          `SELECT count(*) FILTER (WHERE state = 'pending') AS pending,
                  count(*) FILTER (WHERE state IN ('failed', 'dead')) AS failed,
                  min(run_after) FILTER (WHERE state = 'pending') AS oldest
             FROM ${table}`,
        );
        const row = rows[0]!;
        return { queue, table, pending: Number(row.pending), failed: Number(row.failed), oldestPendingSince: row.oldest?.toISOString() ?? null } satisfies QueueDepth;
      }),
    );
    res.setHeader("Cache-Control", "no-store");
    res.json({ ready: health.ready, checks: health.checks, queues: depths } satisfies StatusView);
  });

  r.get("/mail/dead", admins, async (_req, res) => {
    const rows = await deadMails(db);
    res.setHeader("Cache-Control", "no-store");
    res.json({
      mails: rows.map((m): DeadMail => ({
        id: m.id,
        kind: m.kind,
        recipient: m.recipient,
        organisationId: m.organisation_id,
        organisationName: m.organisation_name,
        attempts: m.attempts,
        lastError: m.last_error,
        createdAt: m.created_at.toISOString(),
        notifications: Number(m.notifications),
      })),
    });
  });

  r.post("/mail/:id/retry", admins, async (req, res) => {
    const id = String(req.params.id);
    if (!/^\d{1,18}$/.test(id)) throw new KuvertError(ErrCode.NotFound, `There is no dead e-mail ${id}.`);
    const count = await db.transaction(async (tx) => {
      // The e-mail and the notifications it combined are pending again, from attempt one.
      const retried = await retryDeadMail(tx, id);
      if (retried === null) throw new KuvertError(ErrCode.NotFound, `There is no dead e-mail ${id} (it may have been retried already).`);
      await audit(tx, { actor: actorOf(req), action: "mail.retried", object: id, outcome: "ok", details: { notifications: retried } });
      return retried;
    });
    deps.wakeMail();
    res.json({ id, state: "pending", notifications: count });
  });

  return r;
}
