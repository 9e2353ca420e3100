// Matrix user verification for Jitsi: the API of matrix-org/matrix-user-verification-service
// (src/routes.js), so that Prosody's mod_auth_matrix_user_verification (docker-jitsi-meet's
// AUTH_TYPE=matrix or hybrid_matrix_token, MATRIX_UVS_URL) uses Kuvert unchanged:
//
//   POST /verify/user          {token, matrix_server_name?}
//     → {results: {user: bool}, user_id: string|null}
//   POST /verify/user_in_room  {token, room_id, matrix_server_name?}
//     → {results: {user: bool, room_membership: bool|null}, user_id: string|null,
//        power_levels: {room: <m.room.power_levels content without users>, user: <level>}|null}
//
// As there: 200 with false results for a token or membership that does not check out, 400 for
// a missing field, 403 for a missing or wrong bearer token (when calls.verifyToken is set).
// Kuvert adds `errcode` and `error` to refusals (stable codes; Prosody ignores them). The token
// is checked with the homeserver's GET /_matrix/federation/v1/openid/userinfo (Server-Server
// API §"OpenID"); membership is the current m.room.member state (joined), and only the rooms of
// active organisations that Kuvert manages pass.
//
// A token is bound to this purpose the first time /verify accepts it (tokens/openid-purpose.ts):
// Prosody may ask again with it, but a token first presented for a console sign-in or on the
// call link page is refused here (errcode KUVERT_OPENID_TOKEN_WRONG_PURPOSE), and one presented
// here never opens a console session.
//
// Refusals are not audited one row each (anyone who reaches /verify could grow the audit log at
// will): they are counted in kuvert_call_verifications_total and logged, and one client address
// may be refused at most calls.verifyRefusalsPerMinute times a minute before it gets 429.
import { timingSafeEqual } from "node:crypto";
import express, { type NextFunction, type Request, type Response } from "express";
import { rateLimit } from "express-rate-limit";
import type { KuvertConfig } from "../config/schema.ts";
import type { Database } from "../db/database.ts";
import { ErrCode, KuvertError } from "../errors.ts";
import { readJson } from "../http/input.ts";
import { logger, pseudonym } from "../log.ts";
import { verifications } from "./metrics.ts";
import { HomeserverError, type Homeserver } from "../matrix/homeserver.ts";
import { findOrganisationByRoom, type StoredOrganisation } from "../organisations/store.ts";
import type { OpenIdTokenPurposes } from "../tokens/openid-purpose.ts";
import { userLevel, type PowerLevels } from "./widget.ts";
import { CallErr } from "./errors.ts";

const log = logger("calls-verify");

/** Refusals one client address may get per minute before it is answered 429. */
export const VERIFY_REFUSALS_PER_MINUTE = 30;

function sameSecret(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

function field(body: Record<string, unknown>, name: string, required: boolean): string | undefined {
  const value = body[name];
  if (value === undefined || value === null || value === "") {
    if (required) throw new KuvertError(ErrCode.InvalidInput, `Invalid request: ${name} not found or with empty value in the JSON payload.`, [{ path: name, message: "missing, expected a string" }]);
    return undefined;
  }
  if (typeof value !== "string") throw new KuvertError(ErrCode.InvalidInput, `${name}: expected a string`, [{ path: name, message: "expected a string" }]);
  return value;
}

/** Whether a person is joined to an active organisation's room, and with which power level. */
export type RoomMembership =
  { member: true; organisation: StoredOrganisation; level: number; displayName: string | null; room: Record<string, unknown> } | { member: false; errcode: typeof CallErr.NotRoomMember | typeof CallErr.RoomNotManaged; error: string; organisation: StoredOrganisation | null };

export class UserVerification {
  readonly #db: Database;
  readonly #hs: Homeserver;
  readonly #purposes: OpenIdTokenPurposes;

  constructor(db: Database, hs: Homeserver, _config: KuvertConfig, purposes: OpenIdTokenPurposes) {
    this.#db = db;
    this.#hs = hs;
    this.#purposes = purposes;
  }

  /** The user of a token presented to /verify, or null: unknown to the homeserver, or bound to another purpose. */
  async #verifyTokenUser(token: string): Promise<{ userId: string } | { userId: null; errcode: string; error: string }> {
    const userId = await this.userOf(token);
    if (!userId) return { userId: null, errcode: ErrCode.OpenIdTokenInvalid, error: "The OpenID token is unknown to the homeserver or expired." };
    const claim = await this.#purposes.claim(token, "verify");
    if (!claim.ok) {
      log.warn({ user: pseudonym(userId) }, "an OpenID token bound to another purpose was presented to /verify");
      return { userId: null, errcode: ErrCode.OpenIdTokenPurpose, error: "The OpenID token was first presented for another purpose (a console sign-in or the call link page); it cannot be used for calls." };
    }
    return { userId };
  }

  /**
   * Whether the user is joined to the room now, the room being an active organisation's room
   * that Kuvert manages; with the room's power levels (without the users map) and the user's.
   */
  async roomMembership(roomId: string, userId: string): Promise<RoomMembership> {
    const org = roomId.startsWith("!") ? await findOrganisationByRoom(this.#db, roomId) : null;
    if (!org || org.state !== "active") return { member: false, errcode: CallErr.RoomNotManaged, error: "The room is not the room of an active organisation that Kuvert manages.", organisation: org };
    let member: Record<string, unknown> | null;
    let pl: PowerLevels | null;
    try {
      member = await this.#hs.stateEvent(roomId, "m.room.member", userId);
      pl = (await this.#hs.stateEvent(roomId, "m.room.power_levels")) as PowerLevels | null;
    } catch (err) {
      if (err instanceof HomeserverError && !err.transient) return { member: false, errcode: CallErr.RoomNotManaged, error: `Kuvert cannot read the room's state (${err.errcode}).`, organisation: org };
      throw new KuvertError(ErrCode.Unavailable, "The homeserver could not be asked about the room.");
    }
    if (member?.membership !== "join") return { member: false, errcode: CallErr.NotRoomMember, error: "The user is not a joined member of the room.", organisation: org };
    const { users: _users, ...room } = (pl ?? {}) as Record<string, unknown>;
    const displayName = typeof member.displayname === "string" && member.displayname.trim() !== "" ? member.displayname.trim() : null;
    return { member: true, organisation: org, level: userLevel(pl, userId), displayName, room };
  }

  /** The Matrix user an OpenID token belongs to, or null if the homeserver does not know it. */
  async userOf(token: string): Promise<string | null> {
    const url = `${this.#hs.url}/_matrix/federation/v1/openid/userinfo?access_token=${encodeURIComponent(token)}`;
    let res: globalThis.Response;
    try {
      res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
    } catch (err) {
      throw new KuvertError(ErrCode.Unavailable, `The homeserver could not be asked about the token: ${(err as Error).message}`);
    }
    if (res.status === 401 || res.status === 403 || res.status === 404) return null;
    if (!res.ok) throw new KuvertError(ErrCode.Unavailable, `The homeserver answered ${res.status} when asked about the token.`);
    const body = (await res.json().catch(() => ({}))) as { sub?: unknown };
    return typeof body.sub === "string" && body.sub.startsWith("@") ? body.sub : null;
  }

  #refused(endpoint: "user" | "user_in_room", outcome: string): void {
    verifications.inc({ endpoint, outcome });
  }

  async verifyUser(body: Record<string, unknown>): Promise<Record<string, unknown>> {
    const token = field(body, "token", true)!;
    field(body, "matrix_server_name", false);
    const checked = await this.#verifyTokenUser(token);
    if (checked.userId === null) {
      this.#refused("user", checked.errcode === ErrCode.OpenIdTokenPurpose ? "purpose" : "token");
      return { results: { user: false }, user_id: null, errcode: checked.errcode, error: checked.error };
    }
    verifications.inc({ endpoint: "user", outcome: "admitted" });
    return { results: { user: true }, user_id: checked.userId };
  }

  async verifyUserInRoom(body: Record<string, unknown>): Promise<Record<string, unknown>> {
    const token = field(body, "token", true)!;
    const roomId = field(body, "room_id", true)!;
    field(body, "matrix_server_name", false);
    const checked = await this.#verifyTokenUser(token);
    if (checked.userId === null) {
      this.#refused("user_in_room", checked.errcode === ErrCode.OpenIdTokenPurpose ? "purpose" : "token");
      return { results: { user: false, room_membership: null }, user_id: null, power_levels: null, errcode: checked.errcode, error: checked.error };
    }
    const userId = checked.userId;
    const membership = await this.roomMembership(roomId, userId);
    if (!membership.member) {
      this.#refused("user_in_room", membership.errcode === CallErr.NotRoomMember ? "not_member" : "room_not_managed");
      log.info({ room: roomId, user: pseudonym(userId), errcode: membership.errcode }, "Jitsi verification refused");
      return { results: { user: true, room_membership: false }, user_id: userId, power_levels: null, errcode: membership.errcode, error: membership.error };
    }
    verifications.inc({ endpoint: "user_in_room", outcome: "admitted" });
    return { results: { user: true, room_membership: true }, user_id: userId, power_levels: { room: membership.room, user: membership.level } };
  }
}

/** The /verify routes, mounted on the public listener. */
export function verifyRoutes(verification: UserVerification, config: KuvertConfig): express.Router {
  const r = express.Router();
  // matrix-user-verification-service's authenticateRequest: 403 when a token is configured and not sent.
  const bearer = (req: Request, _res: Response, next: NextFunction) => {
    const expected = config.calls.verifyToken;
    if (!expected) return next();
    const header = req.headers.authorization ?? "";
    if (!header.startsWith("Bearer ") || !sameSecret(header.slice(7).trim(), expected)) {
      log.warn({ path: req.path, ip: req.ip }, "verification request without the right bearer token");
      verifications.inc({ endpoint: req.path.endsWith("user_in_room") ? "user_in_room" : "user", outcome: "bearer" });
      return next(new KuvertError(ErrCode.Forbidden, "A valid bearer token is required (calls.verifyToken)."));
    }
    next();
  };
  const body = (req: Request): Record<string, unknown> => {
    if (!req.is("application/json")) throw new KuvertError(ErrCode.UnsupportedMediaType, "Send the body as application/json.");
    if (typeof req.body !== "object" || req.body === null || Array.isArray(req.body)) throw new KuvertError(ErrCode.InvalidInput, "Invalid request: no JSON content found in body.");
    return req.body as Record<string, unknown>;
  };
  // Counts the refusals of one address (a wrong bearer token, an unknown token, no membership):
  // a member's admitted requests never count.
  const refusals = rateLimit({
    windowMs: 60_000,
    limit: VERIFY_REFUSALS_PER_MINUTE,
    standardHeaders: "draft-7",
    legacyHeaders: false,
    requestWasSuccessful: (_req, res) => res.statusCode === 200 && res.locals.admitted === true,
    skipSuccessfulRequests: true,
    handler: (req, _res, next) => {
      verifications.inc({ endpoint: req.path.endsWith("user_in_room") ? "user_in_room" : "user", outcome: "rate_limited" });
      next(new KuvertError(ErrCode.RateLimited, "Too many refused verification requests from this address; try again in a minute."));
    },
  });
  const answer = (res: Response, result: Record<string, unknown>) => {
    const results = result.results as { user?: boolean; room_membership?: boolean | null };
    res.locals.admitted = results.user === true && results.room_membership !== false && results.room_membership !== null;
    res.json(result);
  };
  r.post("/verify/user", refusals, bearer, ...readJson("16kb"), async (req, res) => {
    answer(res, await verification.verifyUser(body(req)));
  });
  r.post("/verify/user_in_room", refusals, bearer, ...readJson("16kb"), async (req, res) => {
    answer(res, await verification.verifyUserInRoom(body(req)));
  });
  return r;
}
