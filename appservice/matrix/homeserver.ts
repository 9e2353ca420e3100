// Kuvert's side of the client-server API, on matrix-appservice-bridge's intents (which speak
// through @vector-im/matrix-bot-sdk). Every room send uses a transaction id derived from the
// work item, so a retry after a timeout is the same PUT and cannot post twice.
import { createHash } from "node:crypto";
import { AppServiceRegistration, Bridge, Logger as BridgeLogger, type Intent } from "matrix-appservice-bridge";
import { LogService, LogLevel } from "@vector-im/matrix-bot-sdk";
import type { KuvertConfig } from "../config/schema.ts";
import { logger, scrub } from "../log.ts";
import type { RetryHint } from "../workers/queue.ts";
import { timedRequest } from "../metrics.ts";

const log = logger("homeserver");

/** A failed homeserver request: status, Matrix errcode, and how long to wait if rate limited. */
export class HomeserverError extends Error implements RetryHint {
  readonly status: number;
  readonly errcode: string;
  readonly retryAfterMs?: number;
  constructor(status: number, errcode: string, message: string, retryAfterMs?: number) {
    super(`${errcode} (${status}): ${message}`);
    this.name = "HomeserverError";
    this.status = status;
    this.errcode = errcode;
    if (retryAfterMs !== undefined) this.retryAfterMs = retryAfterMs;
  }
  /** Worth trying again later: rate limited, a server error, or no answer at all. */
  get transient(): boolean {
    return this.status === 429 || this.status >= 500 || this.status === 0;
  }
  /**
   * A refusal that trying again cannot change: any 4xx but 429 (rate limited), 408 (timed out)
   * and 401 (Kuvert's own token refused: a configuration fault for operators, shown by readiness,
   * after which the work goes through). E.g. M_UNRECOGNIZED on a required endpoint, M_TOO_LARGE,
   * M_FORBIDDEN. The work queues fail such an item at once, with this as the reason.
   */
  get permanent(): boolean {
    return this.status >= 400 && this.status < 500 && this.status !== 429 && this.status !== 408 && this.status !== 401;
  }
}

function toHomeserverError(err: unknown): HomeserverError {
  if (err instanceof HomeserverError) return err;
  const e = err as { statusCode?: number; errcode?: string; error?: string; retryAfterMs?: number; body?: unknown; message?: string; code?: string };
  if (typeof e?.statusCode === "number") {
    return new HomeserverError(e.statusCode, e.errcode ?? "M_UNKNOWN", e.error ?? (typeof e.body === "string" ? e.body : "no error text"), e.retryAfterMs);
  }
  return new HomeserverError(0, "K_HOMESERVER_UNREACHABLE", `the homeserver could not be reached: ${e?.code ?? e?.message ?? String(err)}`);
}

/** The homeserver does not know the endpoint (Synapse: 400 or 404 M_UNRECOGNIZED; others 404/405 without a Matrix body). */
export function lacksEndpoint(err: HomeserverError): boolean {
  return err.errcode === "M_UNRECOGNIZED" || ((err.status === 404 || err.status === 405) && err.errcode === "M_UNKNOWN");
}

/** A transaction id for PUT /send derived from what the send is for (spec: CS API §"Transaction identifiers"). */
export function transactionId(workKey: string): string {
  return `kuvert.${createHash("sha256").update(workKey).digest("base64url").slice(0, 32)}`;
}

export type Membership = "invite" | "join" | "leave" | "ban" | "knock";

export interface StateEvent {
  type: string;
  state_key: string;
  sender: string;
  event_id: string;
  content: Record<string, unknown>;
}

const botSdkLog = logger("matrix-bot-sdk");
let loggingRouted = false;
/** The bridge's and bot-sdk's own logs go through Kuvert's logger (scrubbed) at warning level and above. */
function routeLibraryLogging(): void {
  if (loggingRouted) return;
  loggingRouted = true;
  BridgeLogger.configure({ console: "off" });
  const text = (parts: unknown[]) => scrub(parts.map((p) => (p instanceof Error ? p.message : typeof p === "string" ? p : JSON.stringify(p))).join(" "));
  LogService.setLogger({
    trace: () => undefined,
    debug: () => undefined,
    info: () => undefined,
    warn: (module: string, ...parts: unknown[]) => botSdkLog.warn({ library: module }, text(parts)),
    error: (module: string, ...parts: unknown[]) => botSdkLog.error({ library: module }, text(parts)),
  });
  LogService.setLevel(LogLevel.WARN);
  // The bot-sdk logs every failed request as an error; Kuvert reports failures itself where it handles them.
  LogService.muteModule("MatrixHttpClient");
}

/** What the homeserver side needs of the registration (registration.ts's Registration has it). */
export interface AppserviceIdentity {
  id: string;
  url?: string | null | undefined;
  as_token: string;
  hs_token: string;
  sender_localpart: string;
  namespaces: { users: { regex: string; exclusive: boolean }[]; aliases: { regex: string; exclusive: boolean }[]; rooms: { regex: string; exclusive: boolean }[] };
}

/**
 * How events reach end-to-end-encrypted rooms (CS API §"End-to-End Encryption"); the module that
 * runs the bot's device gives it. Without it, Kuvert sends as it always did.
 */
export interface RoomEncryption {
  /** Whether the room is encrypted (its m.room.encryption state, as last learned). */
  isEncrypted(roomId: string): Promise<boolean>;
  /** Sends an event into an encrypted room, encrypted, once per work key (as Homeserver.send). */
  send(roomId: string, type: string, content: Record<string, unknown>, workKey: string): Promise<string>;
}

export class Homeserver {
  readonly botUserId: string;
  readonly #bridge: Bridge;
  readonly #config: KuvertConfig;
  readonly #registration: AppserviceIdentity;
  #bot: Intent | undefined;
  #encryption: RoomEncryption | undefined;

  constructor(config: KuvertConfig, registration: AppserviceIdentity) {
    routeLibraryLogging();
    this.#config = config;
    this.#registration = registration;
    this.botUserId = `@${registration.sender_localpart}:${config.homeserver.domain}`;
    const reg = AppServiceRegistration.fromObject({ ...registration, url: registration.url ?? null } as never);
    this.#bridge = new Bridge({
      homeserverUrl: config.homeserver.url,
      domain: config.homeserver.domain,
      registration: reg,
      // Kuvert takes transactions in itself (stored before they are answered) and keeps its own state in its database.
      controller: { onEvent: () => undefined },
      disableStores: true,
      disableContext: true,
      suppressEcho: true,
    });
  }

  /** Base URL of the client-server API. */
  get url(): string {
    return this.#config.homeserver.url.replace(/\/$/, "");
  }

  /** Authorization header for Kuvert's own requests (the appservice's as_token). */
  get authorization(): string {
    return `Bearer ${this.#registration.as_token}`;
  }

  async start(): Promise<void> {
    await this.#bridge.initialise();
    this.#bot = this.#bridge.getIntent();
  }

  /** Makes sure the bot exists and carries its display name. */
  async prepareBot(): Promise<void> {
    try {
      await this.request("POST", "/_matrix/client/v3/register", undefined, { type: "m.login.application_service", username: this.#registration.sender_localpart });
    } catch (err) {
      const e = toHomeserverError(err);
      if (e.errcode !== "M_USER_IN_USE" && e.errcode !== "M_EXCLUSIVE") throw e;
    }
    const wanted = this.#config.appservice.botDisplayName;
    const profile = await this.request<{ displayname?: string }>("GET", `/_matrix/client/v3/profile/${encodeURIComponent(this.botUserId)}/displayname`).catch(() => ({}) as { displayname?: string });
    if (profile.displayname !== wanted) {
      await this.request("PUT", `/_matrix/client/v3/profile/${encodeURIComponent(this.botUserId)}/displayname`, undefined, { displayname: wanted });
    }
  }

  /** A client-server request as the bot (or as `asUser`, masqueraded through the appservice). */
  async request<T = Record<string, unknown>>(method: string, path: string, qs?: Record<string, string>, body?: unknown, asUser?: string): Promise<T> {
    const intent = asUser ? this.#bridge.getIntent(asUser) : this.#intent();
    return timedRequest(
      method,
      async () => {
        try {
          return (await intent.matrixClient.doRequest(method, path, qs ?? null, body ?? null)) as T;
        } catch (err) {
          throw toHomeserverError(err);
        }
      },
      (err) => (err instanceof HomeserverError ? err.status : 0),
    );
  }

  #intent(): Intent {
    if (!this.#bot) throw new Error("Homeserver.start() was not called");
    return this.#bot;
  }

  room(roomId: string): string {
    return `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}`;
  }

  async createRoom(body: Record<string, unknown>): Promise<string> {
    const res = await this.request<{ room_id: string }>("POST", "/_matrix/client/v3/createRoom", undefined, body);
    return res.room_id;
  }

  /** The room an alias points to, or null if the alias is unknown. */
  async resolveAlias(alias: string): Promise<string | null> {
    try {
      const res = await this.request<{ room_id: string }>("GET", `/_matrix/client/v3/directory/room/${encodeURIComponent(alias)}`);
      return res.room_id;
    } catch (err) {
      if (err instanceof HomeserverError && err.status === 404) return null;
      throw err;
    }
  }

  /** Current membership of everyone the room knows (CS API §"GET /rooms/{roomId}/members"). */
  async members(roomId: string): Promise<Map<string, Membership>> {
    const res = await this.request<{ chunk: StateEvent[] }>("GET", `${this.room(roomId)}/members`);
    return new Map(res.chunk.map((e) => [e.state_key, e.content.membership as Membership]));
  }

  async state(roomId: string): Promise<StateEvent[]> {
    return this.request<StateEvent[]>("GET", `${this.room(roomId)}/state`);
  }

  async stateEvent(roomId: string, type: string, stateKey = ""): Promise<Record<string, unknown> | null> {
    try {
      return await this.request("GET", `${this.room(roomId)}/state/${encodeURIComponent(type)}/${encodeURIComponent(stateKey)}`);
    } catch (err) {
      if (err instanceof HomeserverError && err.status === 404) return null;
      throw err;
    }
  }

  async sendState(roomId: string, type: string, stateKey: string, content: Record<string, unknown>): Promise<string> {
    const res = await this.request<{ event_id: string }>("PUT", `${this.room(roomId)}/state/${encodeURIComponent(type)}/${encodeURIComponent(stateKey)}`, undefined, content);
    return res.event_id;
  }

  /** From now on, events for encrypted rooms go through `encryption`. */
  useEncryption(encryption: RoomEncryption): void {
    this.#encryption = encryption;
  }

  /** Whether what Kuvert sends into the room is end-to-end encrypted (false while no module encrypts). */
  async isEncrypted(roomId: string): Promise<boolean> {
    return this.#encryption ? this.#encryption.isEncrypted(roomId) : false;
  }

  /**
   * Sends a room event once: the transaction id comes from `workKey`, so repeating the call repeats
   * the same PUT. Into an encrypted room it goes encrypted (RoomEncryption), just as once.
   */
  async send(roomId: string, type: string, content: Record<string, unknown>, workKey: string): Promise<string> {
    if (this.#encryption && (await this.#encryption.isEncrypted(roomId))) return this.#encryption.send(roomId, type, content, workKey);
    return this.sendAsIs(roomId, type, content, workKey);
  }

  /** Sends a room event once, as it is (an event already encrypted, or for a room that is not). */
  async sendAsIs(roomId: string, type: string, content: Record<string, unknown>, workKey: string): Promise<string> {
    const res = await this.request<{ event_id: string }>("PUT", `${this.room(roomId)}/send/${encodeURIComponent(type)}/${transactionId(workKey)}`, undefined, content);
    return res.event_id;
  }

  async invite(roomId: string, userId: string, reason?: string): Promise<void> {
    await this.request("POST", `${this.room(roomId)}/invite`, undefined, { user_id: userId, ...(reason ? { reason } : {}) });
  }

  async kick(roomId: string, userId: string, reason: string): Promise<void> {
    await this.request("POST", `${this.room(roomId)}/kick`, undefined, { user_id: userId, reason });
  }

  /**
   * Checks that the homeserver reaches Kuvert and Kuvert reaches the homeserver. Uses the
   * appservice ping (CS API §"POST /_matrix/client/v1/appservice/{appserviceId}/ping",
   * Matrix 1.7); a homeserver without it is asked who Kuvert is instead (CS API
   * §"GET /_matrix/client/v3/account/whoami"). Synapse < 1.84 answers the ping with 400
   * M_UNRECOGNIZED (its answer to any unknown client path); other homeservers with 404 or 405.
   */
  async ping(): Promise<{ ok: boolean; method: "appservice-ping" | "whoami"; detail: string }> {
    try {
      const res = await this.request<{ duration_ms: number }>("POST", `/_matrix/client/v1/appservice/${encodeURIComponent(this.#registration.id)}/ping`, undefined, {
        transaction_id: `kuvert-ping-${Date.now()}`,
      });
      return { ok: true, method: "appservice-ping", detail: `round trip ${res.duration_ms} ms` };
    } catch (err) {
      const e = toHomeserverError(err);
      if (lacksEndpoint(e)) {
        try {
          await this.request("GET", "/_matrix/client/v3/account/whoami");
          return { ok: true, method: "whoami", detail: "homeserver has no appservice ping; Kuvert's token is accepted" };
        } catch (whoamiErr) {
          return { ok: false, method: "whoami", detail: toHomeserverError(whoamiErr).message };
        }
      }
      log.warn({ errcode: e.errcode, status: e.status }, "appservice ping failed");
      return { ok: false, method: "appservice-ping", detail: e.message };
    }
  }
}
