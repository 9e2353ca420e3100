import { randomBytes, randomInt } from "node:crypto";
import { MatrixError, invalidParam } from "./errors.ts";

const LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
const ALPHANUMERIC = LETTERS + "0123456789";

export function randomString(length: number, alphabet = LETTERS): string {
  let out = "";
  for (let i = 0; i < length; i++) out += alphabet[randomInt(alphabet.length)];
  return out;
}

/** Event IDs of room versions 4+: url-safe unpadded base64 of a 32-byte hash (Appendices §"Event IDs"). */
export const newEventId = (): string => "$" + randomBytes(32).toString("base64url");
/** Synapse's room IDs are 18 random letters. */
export const newRoomId = (serverName: string): string => `!${randomString(18)}:${serverName}`;
export const newMediaId = (): string => randomString(24, ALPHANUMERIC);
export const newDeviceId = (): string => randomString(10, "ABCDEFGHIJKLMNOPQRSTUVWXYZ");
export const newAccessToken = (prefix = "syt"): string => `${prefix}_${randomBytes(24).toString("base64url")}`;

export interface Identifier {
  sigil: string;
  localpart: string;
  domain: string;
}

/** Splits `@user:domain`, `#alias:domain`, `!room:domain` (Appendices §"Common Identifier Format"). */
export function parseIdentifier(id: string, sigil: string): Identifier | undefined {
  if (id.length > 255 || !id.startsWith(sigil)) return undefined;
  const colon = id.indexOf(":");
  if (colon < 1) return undefined;
  const domain = id.slice(colon + 1);
  if (!domain || /\s/.test(domain)) return undefined;
  return { sigil, localpart: id.slice(1, colon), domain };
}

export function isUserId(id: string): boolean {
  return parseIdentifier(id, "@") !== undefined;
}

export function requireUserId(id: string): Identifier {
  const parsed = parseIdentifier(id, "@");
  if (!parsed) throw invalidParam(`Invalid user_id: ${id}`);
  return parsed;
}

export function requireRoomAlias(alias: string): Identifier {
  const parsed = parseIdentifier(alias, "#");
  if (!parsed) throw invalidParam(`Invalid room alias: ${alias}`);
  return parsed;
}

/** Synapse's `check_username`: localparts of new (non-appservice) accounts (Appendices §"User Identifiers"). */
export function checkNewLocalpart(localpart: string): void {
  if (!localpart) throw new MatrixError(400, "M_INVALID_USERNAME", "User ID cannot be empty");
  if (/[^a-z0-9._=\-/+]/.test(localpart)) {
    throw new MatrixError(400, "M_INVALID_USERNAME", "User ID can only contain characters a-z, 0-9, or '=_-./+'");
  }
  if (localpart.startsWith("_")) throw new MatrixError(400, "M_INVALID_USERNAME", "User ID may not begin with _");
  if (/^\d+$/.test(localpart)) {
    throw new MatrixError(400, "M_INVALID_USERNAME", "Numeric user IDs are reserved for guest users.");
  }
}
