// Guest tokens: the JWT that Jitsi's token authentication (Prosody's mod_auth_token, JWT_APP_ID /
// JWT_APP_SECRET in docker-jitsi-meet) accepts, signed HS256 with the secret Kuvert shares with
// Jitsi. Claims as Jitsi reads them (jitsi-meet's doc "Token authentication"): iss and aud = the
// app id, sub = the Jitsi domain, room = the conference (Jitsi lower-cases room names), exp and
// nbf, context.user.name for the name shown, moderator false. jti = the guest link's id, which
// Kuvert checks against its database before the guest page joins (revocation).
import { errors, jwtVerify, SignJWT, type JWTPayload } from "jose";

export interface GuestClaims {
  linkId: string;
  appId: string;
  domain: string;
  conferenceId: string;
  guestName: string;
  notBefore: Date;
  expiresAt: Date;
}

export interface GuestPayload extends JWTPayload {
  room: string;
  moderator: boolean;
  context: { user: { name: string } };
}

function key(secret: string): Uint8Array {
  return new TextEncoder().encode(secret);
}

/** The room claim and the room name the guest page joins: Jitsi's room names are lower case. */
export function jitsiRoomName(conferenceId: string): string {
  return conferenceId.toLowerCase();
}

export async function signGuestToken(secret: string, c: GuestClaims): Promise<string> {
  return new SignJWT({ room: jitsiRoomName(c.conferenceId), moderator: false, context: { user: { name: c.guestName } } })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setIssuer(c.appId)
    .setAudience(c.appId)
    .setSubject(c.domain)
    .setJti(c.linkId)
    .setIssuedAt(Math.floor(c.notBefore.getTime() / 1000))
    .setNotBefore(Math.floor(c.notBefore.getTime() / 1000))
    .setExpirationTime(Math.floor(c.expiresAt.getTime() / 1000))
    .sign(key(secret));
}

export type GuestTokenCheck = { ok: true; payload: GuestPayload } | { ok: false; reason: "expired" | "invalid"; linkId?: string };

/** Checks signature, algorithm, issuer, audience, subject and times; says why a token fails. */
export async function verifyGuestToken(secret: string, appId: string, domain: string, token: string): Promise<GuestTokenCheck> {
  try {
    const { payload } = await jwtVerify(token, key(secret), { algorithms: ["HS256"], issuer: appId, audience: appId, subject: domain, requiredClaims: ["jti", "exp", "nbf", "room"] });
    return { ok: true, payload: payload as GuestPayload };
  } catch (err) {
    if (err instanceof errors.JWTExpired) return { ok: false, reason: "expired", ...(typeof err.payload.jti === "string" ? { linkId: err.payload.jti } : {}) };
    return { ok: false, reason: "invalid" };
  }
}
