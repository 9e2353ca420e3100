// Synapse's user admin API, as Kuvert uses it for clerk accounts (docs/admin_api/user_admin_api.md):
//   GET  /_synapse/admin/v2/users/<user_id>                     query (404 M_NOT_FOUND when absent)
//   PUT  /_synapse/admin/v2/users/<user_id>                     create (201) or modify (200)
//   GET  /_synapse/admin/v1/username_available?username=        200 {available} or 400 M_USER_IN_USE /
//                                                               M_INVALID_USERNAME / M_EXCLUSIVE
//   POST /_synapse/admin/v1/reset_password/<user_id>            {new_password, logout_devices}
//   POST /_synapse/admin/v1/deactivate/<user_id>                {erase}
// With the token of a homeserver admin (homeserver.adminToken); any other token gets 403 M_FORBIDDEN.
// Older Synapse versions lack username_available (404 M_UNRECOGNIZED or a bare 404): Kuvert then
// asks for the user instead. Older versions ignore `external_ids`: see Accounts for how an
// account made by an earlier attempt is recognised without it.
import type { KuvertConfig } from "../config/schema.ts";
import { KuvertError } from "../errors.ts";
import { timedRequest } from "../metrics.ts";
import { AccountErr } from "./errors.ts";

export class SynapseAdminError extends Error {
  readonly status: number;
  readonly errcode: string;
  constructor(status: number, errcode: string, message: string) {
    super(`${errcode} (${status}): ${message}`);
    this.name = "SynapseAdminError";
    this.status = status;
    this.errcode = errcode;
  }
  /** Worth trying again: rate limited, a server error, or no answer. */
  get transient(): boolean {
    return this.status === 429 || this.status >= 500 || this.status === 0;
  }
  /** The token is missing, unknown or not an admin's. */
  get notAdmin(): boolean {
    return this.status === 401 || (this.status === 403 && this.errcode === "M_FORBIDDEN");
  }
}

export interface SynapseUser {
  name: string;
  displayname?: string | null;
  threepids?: { medium: string; address: string }[];
  /** Absent on older Synapse versions. */
  external_ids?: { auth_provider: string; external_id: string }[];
  /** Seconds (Synapse's admin API). */
  creation_ts?: number;
  deactivated?: boolean | number;
}

export const KUVERT_AUTH_PROVIDER = "kuvert";

export class SynapseAdmin {
  readonly #url: string;
  readonly #token: string | undefined;

  constructor(config: KuvertConfig) {
    this.#url = config.homeserver.url.replace(/\/$/, "");
    this.#token = config.homeserver.adminToken;
  }

  get configured(): boolean {
    return this.#token !== undefined && this.#token !== "";
  }

  /** Refuses early, with a sentence, when no admin token is configured. */
  requireToken(): void {
    if (!this.configured) {
      throw new KuvertError(AccountErr.HomeserverAdmin, "Accounts cannot be created: no homeserver admin token is configured (homeserver.adminToken, or KUVERT_HOMESERVER_ADMIN_TOKEN).");
    }
  }

  async #call<T>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
    this.requireToken();
    return timedRequest(
      method,
      async () => {
        let res: Response;
        try {
          res = await fetch(`${this.#url}${path}`, {
            method,
            headers: { authorization: `Bearer ${this.#token}`, ...(body !== undefined ? { "content-type": "application/json" } : {}) },
            ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
            signal: AbortSignal.timeout(30_000),
          });
        } catch (err) {
          throw new SynapseAdminError(0, "K_HOMESERVER_UNREACHABLE", `the homeserver could not be reached: ${(err as Error).message}`);
        }
        const text = await res.text();
        let parsed: Record<string, unknown> = {};
        try {
          parsed = text ? (JSON.parse(text) as Record<string, unknown>) : {};
        } catch {
          parsed = { error: text.slice(0, 200) };
        }
        if (!res.ok) {
          throw new SynapseAdminError(res.status, typeof parsed.errcode === "string" ? parsed.errcode : res.status === 404 ? "M_UNRECOGNIZED" : "M_UNKNOWN", typeof parsed.error === "string" ? parsed.error : res.statusText);
        }
        return { status: res.status, body: parsed as T };
      },
      (err) => (err instanceof SynapseAdminError ? err.status : 0),
    );
  }

  static userPath(userId: string): string {
    return encodeURIComponent(userId);
  }

  /** The user, or null when the homeserver has none by this ID. */
  async getUser(userId: string): Promise<SynapseUser | null> {
    try {
      return (await this.#call<SynapseUser>("GET", `/_synapse/admin/v2/users/${SynapseAdmin.userPath(userId)}`)).body;
    } catch (err) {
      if (err instanceof SynapseAdminError && err.status === 404 && err.errcode === "M_NOT_FOUND") return null;
      throw err;
    }
  }

  /**
   * Whether a new account could take this localpart: true, or a SynapseAdminError with
   * M_USER_IN_USE, M_INVALID_USERNAME or M_EXCLUSIVE. On a Synapse without the endpoint,
   * asks for the user instead (then only "taken" is known).
   */
  async usernameAvailable(localpart: string, domain: string): Promise<true> {
    try {
      await this.#call("GET", `/_synapse/admin/v1/username_available?username=${encodeURIComponent(localpart)}`);
      return true;
    } catch (err) {
      if (!(err instanceof SynapseAdminError && err.status === 404 && err.errcode === "M_UNRECOGNIZED")) throw err;
    }
    const existing = await this.getUser(`@${localpart}:${domain}`);
    if (existing) throw new SynapseAdminError(400, "M_USER_IN_USE", "User ID already taken.");
    return true;
  }

  /** Creates (201) or — if it exists meanwhile — modifies (200) the account. Answers which. */
  async putUser(userId: string, body: Record<string, unknown>): Promise<{ created: boolean; user: SynapseUser }> {
    const res = await this.#call<SynapseUser>("PUT", `/_synapse/admin/v2/users/${SynapseAdmin.userPath(userId)}`, body);
    return { created: res.status === 201, user: res.body };
  }

  /** Sets a new password and ends every session of the user. */
  async resetPassword(userId: string, newPassword: string): Promise<void> {
    await this.#call("POST", `/_synapse/admin/v1/reset_password/${SynapseAdmin.userPath(userId)}`, { new_password: newPassword, logout_devices: true });
  }

  async deactivate(userId: string): Promise<void> {
    await this.#call("POST", `/_synapse/admin/v1/deactivate/${SynapseAdmin.userPath(userId)}`, { erase: false });
  }
}

/** A homeserver answer as a KuvertError for the API: clear about the token, the name, or the homeserver. */
export function adminErrorToKuvert(err: unknown, what: string): KuvertError {
  if (err instanceof KuvertError) return err;
  if (err instanceof SynapseAdminError) {
    if (err.notAdmin) return new KuvertError(AccountErr.HomeserverAdmin, `${what}: the homeserver refused Kuvert's admin token (${err.errcode}); homeserver.adminToken must belong to a homeserver admin.`);
    if (err.errcode === "M_USER_IN_USE" || err.errcode === "M_EXCLUSIVE") return new KuvertError(AccountErr.UsernameTaken, `${what}: the username is taken on the homeserver (${err.errcode}).`);
    if (err.errcode === "M_INVALID_USERNAME") return new KuvertError(AccountErr.UsernameInvalid, `${what}: the homeserver does not accept the username: ${err.message}`);
    return new KuvertError(AccountErr.HomeserverFailed, `${what}: the homeserver answered ${err.message}`);
  }
  return new KuvertError(AccountErr.HomeserverFailed, `${what}: ${(err as Error).message}`);
}
