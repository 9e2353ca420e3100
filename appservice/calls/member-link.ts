// The call link for members: Element X shows no Jitsi widgets, so `!video` also gives a browser
// link (Calls.memberLinkUrl) to the console's call link page (web/console/join.html). There the
// member signs in with their Matrix account exactly as staff sign in to the console (password or
// single sign-on → OpenID token), and the page hands the token to
// POST /api/v1/member-link/session {callId, access_token, matrix_server_name}. Kuvert asks the
// homeserver whose token it is, binds the token to this purpose (once), checks that the person is
// joined to the call's organisation room now, and answers what the guest page needs to join the
// conference: a short join token like a guest's (guest-token.ts), with the member's name, and
// moderator rights for staff (power level 50). Joins and refusals of confirmed accounts are
// audited (call.member_joined, call.member_join refused); failed sign-ins count per address.
import express from "express";
import { rateLimit } from "express-rate-limit";
import { z } from "zod";
import { audit } from "../audit/audit.ts";
import type { KuvertConfig } from "../config/schema.ts";
import type { Database } from "../db/database.ts";
import { ErrCode, KuvertError, parseInput } from "../errors.ts";
import { readJson } from "../http/input.ts";
import { logger, pseudonym } from "../log.ts";
import type { OpenIdTokenPurposes } from "../tokens/openid-purpose.ts";
import type { Calls, GuestSession } from "./service.ts";
import type { UserVerification } from "./verify.ts";
import { CallErr } from "./errors.ts";

const log = logger("calls-member-link");

/** Staff's level in organisation rooms: they become Jitsi moderators, as through Element. */
const MODERATOR_LEVEL = 50;

export const memberSessionInput = z
  .object({
    callId: z.string().min(1).max(100),
    access_token: z.string().min(1).max(2000),
    matrix_server_name: z.string().min(1).max(255),
    token_type: z.string().optional(),
    expires_in: z.number().optional(),
  })
  .strict();

export class MemberLinks {
  readonly #db: Database;
  readonly #calls: Calls;
  readonly #verification: UserVerification;
  readonly #purposes: OpenIdTokenPurposes;
  readonly #config: KuvertConfig;

  constructor(db: Database, calls: Calls, verification: UserVerification, purposes: OpenIdTokenPurposes, config: KuvertConfig) {
    this.#db = db;
    this.#calls = calls;
    this.#verification = verification;
    this.#purposes = purposes;
    this.#config = config;
  }

  /** The account an OpenID token made for this page belongs to; refuses other servers, unknown, used and re-purposed tokens. */
  async #member(accessToken: string, serverName: string): Promise<string> {
    const domain = this.#config.homeserver.domain;
    if (serverName !== domain) throw new KuvertError(ErrCode.SignInFailed, `The token was issued by ${serverName}; only accounts of ${domain} can join here.`);
    const userId = await this.#verification.userOf(accessToken);
    if (!userId) throw new KuvertError(ErrCode.SignInFailed, "The homeserver does not know this OpenID token (it is wrong or has expired); sign in again.");
    const claim = await this.#purposes.claim(accessToken, "member-link");
    if (!claim.ok && claim.reason === "used") throw new KuvertError(ErrCode.OpenIdTokenUsed, "This OpenID token has already been used; sign in again.");
    if (!claim.ok) throw new KuvertError(ErrCode.OpenIdTokenPurpose, "This OpenID token was made for something else; sign in on this page.");
    return userId;
  }

  /** Checks token, call and membership; answers the join details, or refuses with a reason (audited). */
  async join(body: unknown): Promise<GuestSession> {
    const input = parseInput(memberSessionInput, body);
    const userId = await this.#member(input.access_token, input.matrix_server_name);
    const refuse = async (err: KuvertError, organisationId: string | null): Promise<never> => {
      await this.#db.transaction((tx) => audit(tx, { actor: userId, action: "call.member_join", organisationId, object: input.callId, outcome: "refused", details: { reason: err.message, errcode: err.errcode } }));
      log.info({ user: pseudonym(userId), call: input.callId, errcode: err.errcode }, "member link join refused");
      throw err;
    };
    let call;
    try {
      call = await this.#calls.runningCall(input.callId);
    } catch (err) {
      if (err instanceof KuvertError) return refuse(err, null);
      throw err;
    }
    const membership = await this.#verification.roomMembership(call.room_id, userId);
    if (!membership.member) {
      const org = membership.organisation;
      if (membership.errcode === CallErr.NotRoomMember) {
        return refuse(new KuvertError(CallErr.NotRoomMember, `${userId} is not a member of the room of ${org?.name ?? "this organisation"}; only its members join this video consultation. Ask staff for a guest link if you should take part.`), org?.id ?? call.organisation_id);
      }
      return refuse(new KuvertError(CallErr.RoomNotManaged, `The video consultation's room is no longer an active organisation's room (${membership.error})`), org?.id ?? call.organisation_id);
    }
    const moderator = membership.level >= MODERATOR_LEVEL;
    const session = await this.#calls.memberSession(call, { userId, displayName: membership.displayName ?? userId, moderator, organisationName: membership.organisation.name });
    await this.#db.transaction((tx) => audit(tx, { actor: userId, action: "call.member_joined", organisationId: membership.organisation.id, object: call.id, outcome: "ok", details: { room: call.room_id, moderator } }));
    log.info({ user: pseudonym(userId), call: call.id }, "member joined through the call link");
    return session;
  }
}

/** POST /api/v1/member-link/session; failed attempts count per address like console sign-ins. */
export function memberLinkRoutes(links: MemberLinks | null, config: KuvertConfig): express.Router {
  const r = express.Router();
  const limit = rateLimit({
    windowMs: 60_000,
    limit: config.console.signInAttemptsPerMinute,
    standardHeaders: "draft-7",
    legacyHeaders: false,
    skipSuccessfulRequests: true,
    requestWasSuccessful: (_req, res) => res.statusCode < 400,
    handler: (_req, _res, next) => next(new KuvertError(ErrCode.RateLimited, "Too many failed attempts from this address; try again in a minute.")),
  });
  r.post("/api/v1/member-link/session", limit, ...readJson("16kb"), async (req, res) => {
    if (!links) throw new KuvertError(ErrCode.ModuleNotLoaded, "The call link for members is not offered here (it needs modules.calls, modules.console and calls.appSecret).");
    if (!req.is("application/json")) throw new KuvertError(ErrCode.UnsupportedMediaType, "Send the OpenID token as application/json.");
    res.set("Cache-Control", "no-store").json(await links.join(req.body));
  });
  return r;
}
