// OpenID tokens bound to their purpose. A Matrix OpenID token proves, to whoever holds it, which
// account it belongs to, and says nothing about what it was requested for. Element hands a
// member's token to Jitsi (inside the widget's JWT, to Prosody, which asks Kuvert's /verify), so
// whoever sees that JWT holds the token too. Kuvert therefore remembers every token it has
// accepted, with the purpose it was first presented for:
//
//   verify       Prosody re-checks a call member: the same token may come again, for /verify only
//   console      a console sign-in: once
//   member-link  a member proving membership on the call link page: once
//
// A token remembered for one purpose is refused for any other. Only a keyed hash of the token
// is stored (HMAC-SHA256 under a random key kept in openid_token_key), and only after the
// homeserver confirmed it, so made-up tokens leave nothing behind. Rows expire long after the
// homeserver stops accepting the token; retention deletes them (014_openid_tokens.sql).
import { createHmac, randomBytes } from "node:crypto";
import type { Database, Queryable } from "../db/database.ts";

export type OpenIdPurpose = "verify" | "console" | "member-link";

/** How long a token is remembered: well past the hour a Synapse OpenID token lives. */
export const OPENID_MEMORY_HOURS = 24;

/** Purposes a token serves once; for the others (verify), presenting it again is fine. */
const ONCE: ReadonlySet<OpenIdPurpose> = new Set(["console", "member-link"]);

export type Claim =
  /** First time seen, or seen again for a purpose that allows it. */
  | { ok: true }
  /** Seen before for this purpose, which allows one use. */
  | { ok: false; reason: "used" }
  /** Seen before for another purpose. */
  | { ok: false; reason: "purpose"; boundTo: OpenIdPurpose };

export class OpenIdTokenPurposes {
  readonly #db: Database;
  #key: Promise<Buffer> | undefined;

  constructor(db: Database) {
    this.#db = db;
  }

  /** The hash key: the stored one, or a new random one if this database has none yet. */
  #hashKey(): Promise<Buffer> {
    this.#key ??= (async () => {
      await this.#db.query("INSERT INTO openid_token_key (id, key) VALUES (1, $1) ON CONFLICT (id) DO NOTHING", [randomBytes(32)]);
      const { rows } = await this.#db.query<{ key: Buffer | Uint8Array }>("SELECT key FROM openid_token_key WHERE id = 1");
      return Buffer.from(rows[0]!.key);
    })().catch((err: unknown) => {
      this.#key = undefined;
      throw err;
    });
    return this.#key;
  }

  async hash(token: string): Promise<string> {
    return createHmac("sha256", await this.#hashKey())
      .update(token)
      .digest("base64url");
  }

  /**
   * Records that a token the homeserver confirmed was presented for `purpose`, and says whether
   * that use is allowed. Concurrent claims of one token: exactly one is first.
   */
  async claim(token: string, purpose: OpenIdPurpose): Promise<Claim> {
    const hash = await this.hash(token);
    for (let attempt = 0; attempt < 2; attempt++) {
      const inserted = await this.#db.query(
        `INSERT INTO openid_tokens_seen (token_hash, purpose, expires_at) VALUES ($1, $2, now() + make_interval(hours => $3))
         ON CONFLICT (token_hash) DO NOTHING`,
        [hash, purpose, OPENID_MEMORY_HOURS],
      );
      if (inserted.rowCount === 1) return { ok: true };
      const { rows } = await this.#db.query<{ purpose: OpenIdPurpose }>("SELECT purpose FROM openid_tokens_seen WHERE token_hash = $1", [hash]);
      const seen = rows[0];
      if (!seen) continue; // deleted by retention in between: claim again
      if (seen.purpose !== purpose) return { ok: false, reason: "purpose", boundTo: seen.purpose };
      return ONCE.has(purpose) ? { ok: false, reason: "used" } : { ok: true };
    }
    return { ok: false, reason: "used" };
  }
}

/** Deletes remembered tokens whose time is over (retention). */
export async function forgetExpiredOpenIdTokens(q: Queryable, now: Date): Promise<number> {
  return (await q.query("DELETE FROM openid_tokens_seen WHERE expires_at < $1", [now])).rowCount;
}
