// Who is asking on the public listener, and may they: API tokens and console sessions checked
// against a required scope. Below every domain: their routes import this, and nothing here
// imports a domain's routes.
import type { NextFunction, Request, Response } from "express";
import type { Role } from "../config/schema.ts";
import type { Database } from "../db/database.ts";
import { ErrCode, KuvertError } from "../errors.ts";
import { logger } from "../log.ts";
import { findToken, type ApiToken, type Scope } from "../tokens/tokens.ts";

const log = logger("public-api");

/** State-changing requests with a session must carry this header (value 1): a cross-site form cannot set it. */
export const CONSOLE_HEADER = "x-kuvert-console";

/** A person signed in to the staff console, as far as authentication needs to know (the console's sessions carry more). */
export interface SignedIn {
  userId: string;
  roles: Role[];
  scopes: Scope[];
}

declare module "express-serve-static-core" {
  interface Request {
    apiToken?: ApiToken;
    /** A signed-in console user (set from the session cookie before any route, by the console). */
    consoleSession?: SignedIn;
    /** The request carried a session cookie of a session that has ended. */
    consoleSessionEnded?: boolean;
    /** Who is asking, with what scopes: an API token or a console session. Set by requireScope. */
    caller?: Caller;
  }
}

/** Who makes a request: an API token or a person signed in to the console. */
export interface Caller {
  /** The actor in the audit log: `token:<name>`, or the person's Matrix ID. */
  actor: string;
  /** The token's name or the person's Matrix ID, for messages. */
  name: string;
  kind: "token" | "session";
  scopes: Scope[];
  /** The organisations the caller may act for (null: all). */
  organisations: string[] | null;
}

const safeMethods = new Set(["GET", "HEAD", "OPTIONS"]);

/**
 * Authentication with a required scope: a bearer API token (the actor is `token:<name>`), or a
 * console session whose roles give the scope (admin → admin, staff, drop; staff → staff, drop;
 * dpo → audit; the actor is the person's Matrix ID). With a session, requests that change
 * something must carry the header X-Kuvert-Console: 1 (a cross-site form cannot send it).
 */
export function requireScope(db: Database, ...allowed: Scope[]) {
  return async (req: Request, _res: Response, next: NextFunction) => {
    const header = req.headers.authorization;
    if (header?.startsWith("Bearer ")) {
      const token = await findToken(db, header.slice(7).trim());
      if (!token) {
        log.warn({ path: req.path, ip: req.ip }, "request with an unknown or revoked API token");
        return next(new KuvertError(ErrCode.Unauthorized, "The API token is unknown or revoked."));
      }
      if (!allowed.some((s) => token.scopes.includes(s))) {
        log.warn({ path: req.path, token: token.name }, "request with a token lacking the scope");
        return next(new KuvertError(ErrCode.Forbidden, `The token ${token.name} lacks the scope ${allowed.join(" or ")}.`));
      }
      req.apiToken = token;
      req.caller = { actor: `token:${token.name}`, name: token.name, kind: "token", scopes: token.scopes, organisations: token.organisations };
      return next();
    }
    const session = req.consoleSession;
    if (!session) {
      if (req.consoleSessionEnded) return next(new KuvertError(ErrCode.SessionExpired, "Your console session has ended (idle too long, or signed out); sign in again."));
      return next(new KuvertError(ErrCode.Unauthorized, "An API token is required: send it as 'Authorization: Bearer <token>' (or sign in to the console)."));
    }
    if (!safeMethods.has(req.method) && req.get(CONSOLE_HEADER) !== "1") {
      return next(new KuvertError(ErrCode.ConsoleHeaderMissing, `Requests that change something must carry the header ${CONSOLE_HEADER}: 1.`));
    }
    if (!allowed.some((s) => session.scopes.includes(s))) {
      log.warn({ path: req.path, roles: session.roles }, "console request without the role for it");
      return next(new KuvertError(ErrCode.Forbidden, `Your roles (${session.roles.join(", ")}) do not allow this; it needs ${allowed.join(" or ")}.`));
    }
    req.caller = { actor: session.userId, name: session.userId, kind: "session", scopes: session.scopes, organisations: null };
    next();
  };
}

/** The caller requireScope let through. */
export function callerOf(req: Request): Caller {
  if (!req.caller) throw new Error("callerOf: the route is not behind requireScope");
  return req.caller;
}

export function actorOf(req: Request): string {
  return req.caller?.actor ?? (req.apiToken ? `token:${req.apiToken.name}` : "anonymous");
}
