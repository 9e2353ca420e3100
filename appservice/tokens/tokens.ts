// API tokens for admins and back-office systems. Only a SHA-256 hash is stored; the token
// is shown once, when it is made.
import { createHash, randomBytes } from "node:crypto";
import { audit } from "../audit/audit.ts";
import type { Database } from "../db/database.ts";
import { ErrCode, KuvertError } from "../errors.ts";

/**
 * admin: the whole admin API (includes staff); staff: what staff do (circulars, calls, guest links);
 * drop: deliver documents (to the token's organisations, or all); audit: read, export and verify
 * the audit log (what the data protection officer does; admin may too).
 */
export const scopes = ["admin", "staff", "drop", "audit"] as const;
export type Scope = (typeof scopes)[number];

export interface ApiToken {
  name: string;
  scopes: Scope[];
  organisations: string[] | null;
}

export function hashToken(token: string): string {
  return createHash("sha256").update(token).digest("hex");
}

export async function createToken(db: Database, name: string, tokenScopes: Scope[], actor: string, organisations: string[] | null = null): Promise<string> {
  if (!/^[a-z0-9][a-z0-9._-]{0,63}$/.test(name)) {
    throw new KuvertError(ErrCode.InvalidInput, `Token name ${JSON.stringify(name)}: expected lower-case letters, digits, dots, hyphens and underscores.`);
  }
  const token = `kvt_${randomBytes(32).toString("base64url")}`;
  await db.transaction(async (tx) => {
    const res = await tx.query("INSERT INTO api_tokens (name, token_hash, scopes, organisations) VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO NOTHING", [name, hashToken(token), tokenScopes, organisations]);
    if (res.rowCount === 0) throw new KuvertError(ErrCode.TokenNameTaken, `A token named ${name} exists already; revoke it first or choose another name.`);
    await audit(tx, { actor, action: "token.created", object: name, outcome: "ok", details: { scopes: tokenScopes, organisations } });
  });
  return token;
}

export async function revokeToken(db: Database, name: string, actor: string): Promise<void> {
  await db.transaction(async (tx) => {
    const res = await tx.query("UPDATE api_tokens SET revoked_at = now() WHERE name = $1 AND revoked_at IS NULL", [name]);
    if (res.rowCount === 0) throw new KuvertError(ErrCode.NotFound, `There is no active token named ${name}.`);
    await audit(tx, { actor, action: "token.revoked", object: name, outcome: "ok" });
  });
}

/** Whether the token may act for the organisation. */
export function tokenCovers(token: Pick<ApiToken, "scopes" | "organisations">, organisationId: string): boolean {
  return token.scopes.includes("admin") || token.organisations === null || token.organisations.includes(organisationId);
}

/** The token's record, or null. Looked up by hash: the token itself is never compared or stored. */
export async function findToken(db: Database, token: string): Promise<ApiToken | null> {
  const { rows } = await db.query<{ name: string; scopes: Scope[]; organisations: string[] | null }>("SELECT name, scopes, organisations FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL", [hashToken(token)]);
  return rows[0] ?? null;
}
