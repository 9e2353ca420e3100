// Console sessions. Staff sign in to the homeserver in the browser, ask it for an OpenID
// token and hand that to Kuvert; Kuvert asks the homeserver whose token it is
// (GET /_matrix/federation/v1/openid/userinfo) and, if that person holds a role in the
// configuration, starts a short session. The browser keeps the session id in an HttpOnly,
// Secure, SameSite=Strict cookie; the database keeps only its SHA-256. A token signs in once,
// and never if it was presented to /verify (tokens/openid-purpose.ts).
import { createHash, randomBytes } from "node:crypto";
import { audit } from "../audit/audit.ts";
import type { KuvertConfig, Role } from "../config/schema.ts";
import type { Database } from "../db/database.ts";
import { ErrCode, KuvertError } from "../errors.ts";
import { logger, pseudonym } from "../log.ts";
import type { OpenIdTokenPurposes } from "../tokens/openid-purpose.ts";
import type { Scope } from "../tokens/tokens.ts";

const log = logger("console-sessions");

export const SESSION_COOKIE = "kuvert_session";
/** Sent (value 1) by the console's own polling: such requests do not count as activity. */
export const BACKGROUND_HEADER = "x-kuvert-background";

export interface ConsoleSession {
  userId: string;
  roles: Role[];
  scopes: Scope[];
  createdAt: string;
  expiresAt: string;
  idleMinutes: number;
}

/** The person's roles in the configuration (staff[].roles). */
export function rolesOf(config: KuvertConfig, userId: string): Role[] {
  const roles = new Set<Role>();
  for (const s of config.staff) if (s.userId === userId) for (const r of s.roles) roles.add(r);
  return [...roles].sort();
}

/** What roles may do, in API scopes: admin → admin, staff, drop; staff → staff, drop; dpo → audit. */
export function scopesOf(roles: readonly Role[]): Scope[] {
  const scopes = new Set<Scope>();
  for (const role of roles) {
    if (role === "admin") ["admin", "staff", "drop"].forEach((s) => scopes.add(s as Scope));
    if (role === "staff") ["staff", "drop"].forEach((s) => scopes.add(s as Scope));
    if (role === "dpo") scopes.add("audit");
  }
  return [...scopes];
}

function hashId(id: string): string {
  return createHash("sha256").update(id).digest("hex");
}

/** The session id from a Cookie header, or undefined. */
export function sessionIdFromCookie(header: string | undefined): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(";")) {
    const [name, ...value] = part.trim().split("=");
    if (name === SESSION_COOKIE) {
      const v = value.join("=");
      return /^[A-Za-z0-9_-]{20,100}$/.test(v) ? v : undefined;
    }
  }
  return undefined;
}

export function sessionCookie(id: string, maxAgeSeconds: number): string {
  return `${SESSION_COOKIE}=${id}; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age=${Math.floor(maxAgeSeconds)}`;
}

export function clearedSessionCookie(): string {
  return `${SESSION_COOKIE}=; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age=0`;
}

export interface SignInRequest {
  accessToken: string;
  matrixServerName: string;
}

export interface ClientInfo {
  address: string | undefined;
  userAgent: string | undefined;
}

export type SessionLookup = { session: ConsoleSession } | { ended: true } | null;

export class ConsoleSessions {
  readonly #db: Database;
  readonly #config: KuvertConfig;
  readonly #purposes: OpenIdTokenPurposes;

  constructor(db: Database, config: KuvertConfig, purposes: OpenIdTokenPurposes) {
    this.#db = db;
    this.#config = config;
    this.#purposes = purposes;
  }

  get idleMinutes(): number {
    return this.#config.console.idleMinutes;
  }

  /** Asks the homeserver whose OpenID token this is (SS API GET /_matrix/federation/v1/openid/userinfo). */
  async #verifyOpenId(req: SignInRequest): Promise<string> {
    const domain = this.#config.homeserver.domain;
    if (req.matrixServerName !== domain) {
      throw new KuvertError(ErrCode.SignInFailed, `The token was issued by ${req.matrixServerName}; only accounts of ${domain} can sign in.`);
    }
    const url = new URL("/_matrix/federation/v1/openid/userinfo", this.#config.homeserver.url);
    url.searchParams.set("access_token", req.accessToken);
    let res: Response;
    try {
      res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
    } catch (err) {
      log.warn({ err: (err as Error).message }, "the homeserver could not be asked about an OpenID token");
      throw new KuvertError(ErrCode.Unavailable, "The homeserver cannot be reached to confirm the sign-in; try again in a moment.");
    }
    const body = (await res.json().catch(() => ({}))) as { sub?: unknown };
    if (res.status === 401 || res.status === 403) throw new KuvertError(ErrCode.SignInFailed, "The homeserver does not know this OpenID token (it is wrong or has expired); sign in again.");
    if (!res.ok || typeof body.sub !== "string") {
      throw new KuvertError(ErrCode.Unavailable, `The homeserver could not confirm the sign-in (HTTP ${res.status}); try again in a moment.`);
    }
    if (!body.sub.endsWith(`:${domain}`)) throw new KuvertError(ErrCode.SignInFailed, `The homeserver names ${body.sub}, not an account of ${domain}.`);
    // Confirmed by the homeserver: now it must be a token that was made for this sign-in.
    const claim = await this.#purposes.claim(req.accessToken, "console");
    if (!claim.ok && claim.reason === "used") {
      throw new KuvertError(ErrCode.OpenIdTokenUsed, "This OpenID token has already been used to sign in; a token signs in once. Sign in again.");
    }
    if (!claim.ok) {
      throw new KuvertError(ErrCode.OpenIdTokenPurpose, `This OpenID token was already presented ${claim.boundTo === "verify" ? "to join a video consultation" : "on a call link page"}; it cannot open a console session. Sign in with the console.`);
    }
    return body.sub;
  }

  /** Checks the OpenID token, then starts a session for staff. Failures and refusals are audited. */
  async signIn(req: SignInRequest, client: ClientInfo): Promise<{ id: string; session: ConsoleSession }> {
    let userId: string;
    try {
      userId = await this.#verifyOpenId(req);
    } catch (err) {
      if (err instanceof KuvertError && (err.errcode === ErrCode.SignInFailed || err.errcode === ErrCode.OpenIdTokenUsed || err.errcode === ErrCode.OpenIdTokenPurpose)) {
        await this.#db.transaction((tx) => audit(tx, { actor: "anonymous", action: "console.sign-in", outcome: "failed", details: { reason: err.message, errcode: err.errcode, address: client.address ?? null } }));
        log.warn({ address: client.address, errcode: err.errcode }, "console sign-in failed: the OpenID token was not confirmed or not made for the console");
      }
      throw err;
    }
    const roles = rolesOf(this.#config, userId);
    if (roles.length === 0) {
      await this.#db.transaction((tx) => audit(tx, { actor: userId, action: "console.sign-in", object: userId, outcome: "refused", details: { reason: "no role in Kuvert's configuration", address: client.address ?? null } }));
      log.warn({ user: pseudonym(userId) }, "console sign-in refused: no role");
      throw new KuvertError(ErrCode.NotStaff, `${userId} holds no role in Kuvert (admin, staff or dpo). The console is for the body's staff; clerks work in their organisation's room in Element.`);
    }
    const id = randomBytes(32).toString("base64url");
    const c = this.#config.console;
    const row = await this.#db.transaction(async (tx) => {
      // Ended sessions go when someone signs in: no schedule needed for them.
      await tx.query("DELETE FROM console_sessions WHERE expires_at < now() OR last_seen_at < now() - make_interval(secs => $1)", [c.idleMinutes * 60]);
      const inserted = await tx.query<{ created_at: Date; expires_at: Date }>("INSERT INTO console_sessions (id_hash, user_id, expires_at, user_agent) VALUES ($1, $2, now() + make_interval(secs => $3), $4) RETURNING created_at, expires_at", [
        hashId(id),
        userId,
        c.maxHours * 3600,
        client.userAgent?.slice(0, 300) ?? null,
      ]);
      await audit(tx, { actor: userId, action: "console.sign-in", object: userId, outcome: "ok", details: { roles } });
      return inserted.rows[0]!;
    });
    log.info({ user: pseudonym(userId), roles }, "console session started");
    return { id, session: this.#present(userId, row.created_at, row.expires_at) };
  }

  #present(userId: string, createdAt: Date, expiresAt: Date): ConsoleSession {
    const roles = rolesOf(this.#config, userId);
    return { userId, roles, scopes: scopesOf(roles), createdAt: createdAt.toISOString(), expiresAt: expiresAt.toISOString(), idleMinutes: this.#config.console.idleMinutes };
  }

  /**
   * The live session with this id, `{ended}` for one that ended, null for none. A request the
   * person made starts the idle time again; a page's own polling (`touch` false) does not, so
   * a console left open still ends after the idle time.
   */
  async find(id: string, touch = true): Promise<SessionLookup> {
    const live = "id_hash = $1 AND expires_at > now() AND last_seen_at > now() - make_interval(secs => $2)";
    const { rows } = await this.#db.query<{ user_id: string; created_at: Date; expires_at: Date }>(
      touch ? `UPDATE console_sessions SET last_seen_at = now() WHERE ${live} RETURNING user_id, created_at, expires_at` : `SELECT user_id, created_at, expires_at FROM console_sessions WHERE ${live}`,
      [hashId(id), this.#config.console.idleMinutes * 60],
    );
    const row = rows[0];
    // A person whose roles were taken out of the configuration is signed out at their next request.
    if (row && rolesOf(this.#config, row.user_id).length > 0) return { session: this.#present(row.user_id, row.created_at, row.expires_at) };
    const gone = await this.#db.query("DELETE FROM console_sessions WHERE id_hash = $1", [hashId(id)]);
    return gone.rowCount ? { ended: true } : null;
  }

  /** Ends the session; audited. */
  async signOut(id: string): Promise<boolean> {
    return this.#db.transaction(async (tx) => {
      const { rows } = await tx.query<{ user_id: string }>("DELETE FROM console_sessions WHERE id_hash = $1 RETURNING user_id", [hashId(id)]);
      const row = rows[0];
      if (!row) return false;
      await audit(tx, { actor: row.user_id, action: "console.sign-out", object: row.user_id, outcome: "ok" });
      return true;
    });
  }
}
