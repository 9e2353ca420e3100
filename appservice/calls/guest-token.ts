// Guest tokens, two kinds:
//
//  * The join token: the JWT that Jitsi's token authentication (Prosody's token/util.lib.lua,
//    JWT_APP_ID / JWT_APP_SECRET in docker-jitsi-meet) accepts, signed HS256 with the secret
//    Kuvert shares with Jitsi. Claims as Jitsi reads them (jitsi-meet's doc "Token
//    authentication"): iss and aud = the app id, sub = the Jitsi domain, room = the conference
//    (Jitsi lower-cases room names), exp and nbf, context.user.name for the name shown,
//    moderator false. Kuvert's guest page gets one, valid a few minutes, only after checking that
//    the link is neither revoked nor expired; it is stored nowhere.
//  * The link token: what the guest's e-mail carries (the guest page's URL fragment). Its
//    audience is GUEST_LINK_AUDIENCE and its key is derived from the app secret, so Prosody
//    refuses it (its accepted audiences are the app id and Element's https://<domain>, and the
//    signature does not check with the app secret): a link only opens the conference through
//    Kuvert's guest page, which sees revocations. jti = the guest link's id.
//
// A room member who joins through the call link page (member-link.ts) gets a join token of the
// first kind too: their name, their Matrix ID as context.user.id, moderator for staff.
import { createHmac } from "node:crypto";
import { errors, jwtVerify, SignJWT, type JWTPayload } from "jose";

/** The audience of link tokens: never one of Prosody's accepted audiences. */
export const GUEST_LINK_AUDIENCE = "kuvert-guest-link";
/** How long a join token is good for: long enough to load Jitsi and log in, short enough that a revocation soon bites. */
export const JOIN_TOKEN_SECONDS = 300;

export interface GuestClaims {
  linkId: string;
  appId: string;
  domain: string;
  conferenceId: string;
  guestName: string;
  notBefore: Date;
  expiresAt: Date;
  /** A room member's Matrix ID (member join tokens only). */
  userId?: string;
  /** Jitsi moderator rights (members with power level 50 and more); guests never. */
  moderator?: boolean;
}

export interface GuestPayload extends JWTPayload {
  room: string;
  moderator: boolean;
  context: { user: { name: string; id?: string } };
}

function key(secret: string): Uint8Array {
  return new TextEncoder().encode(secret);
}

/** The link tokens' key: derived from the app secret, never equal to it. */
function linkKey(secret: string): Uint8Array {
  return new Uint8Array(createHmac("sha256", secret).update("kuvert guest link token").digest());
}

/** The room claim and the room name the guest page joins: Jitsi's room names are lower case. */
export function jitsiRoomName(conferenceId: string): string {
  return conferenceId.toLowerCase();
}

function claims(c: GuestClaims, audience: string): SignJWT {
  const user = c.userId ? { name: c.guestName, id: c.userId } : { name: c.guestName };
  return new SignJWT({ room: jitsiRoomName(c.conferenceId), moderator: c.moderator ?? false, context: { user } })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setIssuer(c.appId)
    .setAudience(audience)
    .setSubject(c.domain)
    .setJti(c.linkId)
    .setIssuedAt(Math.floor(c.notBefore.getTime() / 1000))
    .setNotBefore(Math.floor(c.notBefore.getTime() / 1000))
    .setExpirationTime(Math.floor(c.expiresAt.getTime() / 1000));
}

/** A join token for Jitsi (Prosody checks signature, iss, aud, exp and nbf; the room at MUC join). */
export async function signGuestToken(secret: string, c: GuestClaims): Promise<string> {
  return claims(c, c.appId).sign(key(secret));
}

/** The token in a guest link's URL: only Kuvert's guest page accepts it. */
export async function signGuestLinkToken(secret: string, c: GuestClaims): Promise<string> {
  return claims(c, GUEST_LINK_AUDIENCE).sign(linkKey(secret));
}

export type GuestTokenCheck = { ok: true; payload: GuestPayload } | { ok: false; reason: "expired" | "invalid"; linkId?: string };

/** Checks a link token's signature, algorithm, issuer, audience, subject and times; says why it fails. */
export async function verifyGuestLinkToken(secret: string, appId: string, domain: string, token: string): Promise<GuestTokenCheck> {
  try {
    const { payload } = await jwtVerify(token, linkKey(secret), { algorithms: ["HS256"], issuer: appId, audience: GUEST_LINK_AUDIENCE, subject: domain, requiredClaims: ["jti", "exp", "nbf", "room"] });
    return { ok: true, payload: payload as GuestPayload };
  } catch (err) {
    if (err instanceof errors.JWTExpired) return { ok: false, reason: "expired", ...(typeof err.payload.jti === "string" ? { linkId: err.payload.jti } : {}) };
    return { ok: false, reason: "invalid" };
  }
}
