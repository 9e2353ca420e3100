import { Core } from "./core.ts";
import { toClientEvent } from "./events.ts";
import { Faults, type FaultInjector } from "./faults.ts";
import { HttpFront } from "./server.ts";
import type { AppserviceRegistration, RoomEvent, StateEvent } from "./types.ts";

export type { FaultInjector, HoldHandle, RateLimitHandle, RateLimits } from "./faults.ts";
export { canonicalJson } from "./types.ts";
export type { AppserviceNamespace, AppserviceRegistration, JsonObject, JsonValue, RoomEvent, StateEvent, StrippedStateEvent } from "./types.ts";

export interface HomeserverOptions {
  /** Default "kuvert.test". */
  serverName?: string;
  /**
   * Default "current". "1.67": answer as Synapse 1.67.0 does where it lacks what newer releases
   * have: transactions pushed to the legacy routes with `?access_token=`, no appservice ping, no
   * authenticated media, no async upload, unknown client paths 400, ephemeral events only for
   * `de.sorunome.msc2409.push_ephemeral` (see synapse-1.67.ts).
   */
  synapse?: "1.67" | "current";
  /** Parsed registration.yaml objects. */
  registrations?: AppserviceRegistration[];
  /** If set, an admin user "@admin:<serverName>" exists with this access token. */
  adminToken?: string;
  /** Default true, like Synapse >= 1.120 with `enable_authenticated_media`: the legacy download endpoints answer 404 for new media. */
  authenticatedMediaOnly?: boolean;
  /** Default true; false: the appservice ping endpoint answers 404 M_UNRECOGNIZED like an old Synapse. */
  supportsAppservicePing?: boolean;
  /**
   * Default false; true: the user admin API of an older Synapse: no
   * `GET /_synapse/admin/v1/username_available` (404 M_UNRECOGNIZED), and `external_ids` in
   * `PUT /_synapse/admin/v2/users/<user_id>` ignored and absent from the user's details.
   */
  legacyUserAdmin?: boolean;
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 0: a free port. */
  port?: number;
  /** First retry delay of a failed appservice transaction; doubles per failure (Synapse: 2 s). Default 2000. */
  asRetryBaseMs?: number;
  /** Cap of the retry delay (Synapse: 512 s = 256 × 2 s). Default 256 × asRetryBaseMs. */
  asRetryMaxMs?: number;
  /** Timeout of transaction and ping requests to appservices. Default 60000, as Synapse's HTTP client. */
  asRequestTimeoutMs?: number;
  /** `max_upload_size`; default 50 MiB as Synapse. */
  maxUploadBytes?: number;
  /**
   * Default false. True: single sign-on through one identity provider, as Synapse with `oidc_providers`:
   * GET /login offers m.login.sso and m.login.token, and the provider's sign-in page is a form asking
   * for a user name and password of this homeserver.
   */
  sso?: boolean;
  /**
   * Synapse's `experimental_features` that add end-to-end encryption to appservice transactions;
   * each off by default, as in Synapse, and each also needs the registration's opt-in:
   * `msc2409_to_device_messages_enabled` (MSC2409, now MSC4203): the to-device messages of an
   * appservice's users (its sender and namespace) in `de.sorunome.msc2409.to_device`, for an
   * appservice that takes ephemeral events (`receive_ephemeral`, or `de.sorunome.msc2409.push_ephemeral`
   * as 1.67 has it). `msc3202_transaction_extensions` (MSC3202): for `org.matrix.msc3202: true`,
   * one-time-key counts, unused fallback key types and device-list changes. (Device masquerading,
   * Synapse's `msc3202_device_masquerading`, is always on here.)
   */
  experimentalFeatures?: { msc2409_to_device_messages_enabled?: boolean; msc3202_transaction_extensions?: boolean };
}

export interface MediaInfo {
  contentType: string;
  filename: string | undefined;
  size: number;
  uploader: string;
  quarantined: boolean;
}

/** An in-memory Matrix homeserver for tests: the Client-Server and Application Service APIs as Synapse serves them. */
export class TestHomeserver {
  readonly serverName: string;
  readonly faults: FaultInjector;
  private readonly faultsImpl: Faults;
  private readonly core: Core;
  private readonly front: HttpFront;
  private readonly host: string;
  private readonly port: number;
  private boundUrl: string | undefined;

  constructor(opts: HomeserverOptions = {}) {
    this.serverName = opts.serverName ?? "kuvert.test";
    const retryBase = opts.asRetryBaseMs ?? 2000;
    const synapse = opts.synapse ?? "current";
    this.core = new Core({
      serverName: this.serverName,
      synapse,
      authenticatedMediaOnly: opts.authenticatedMediaOnly ?? synapse === "current",
      supportsAppservicePing: opts.supportsAppservicePing ?? true,
      legacyUserAdmin: opts.legacyUserAdmin ?? false,
      asRetryBaseMs: retryBase,
      asRetryMaxMs: opts.asRetryMaxMs ?? retryBase * 256,
      asRequestTimeoutMs: opts.asRequestTimeoutMs ?? 60000,
      maxUploadBytes: opts.maxUploadBytes ?? 50 * 1024 * 1024,
      sso: opts.sso ?? false,
      appserviceToDevice: opts.experimentalFeatures?.msc2409_to_device_messages_enabled ?? false,
      appserviceTransactionExtensions: opts.experimentalFeatures?.msc3202_transaction_extensions ?? false,
    });
    this.faultsImpl = new Faults();
    this.faults = this.faultsImpl;
    this.front = new HttpFront(this.core, this.faultsImpl);
    this.host = opts.host ?? "127.0.0.1";
    this.port = opts.port ?? 0;
    for (const reg of opts.registrations ?? []) this.addRegistration(reg);
    if (opts.adminToken !== undefined) {
      const adminId = `@admin:${this.serverName}`;
      this.core.users.create(adminId, { admin: true, displayname: "admin" });
      this.core.users.issueToken(adminId, "ADMIN", "admin token", opts.adminToken);
    }
  }

  /** e.g. http://127.0.0.1:41234 once started. */
  get url(): string {
    if (this.boundUrl === undefined) throw new Error("TestHomeserver is not started");
    return this.boundUrl;
  }

  async start(): Promise<void> {
    const port = await this.front.listen(this.host, this.port);
    const host = this.host.includes(":") ? `[${this.host}]` : this.host;
    this.boundUrl = `http://${host}:${port}`;
  }

  /** Closes the listener and every connection, and stops pushing transactions; leaves no timers behind. */
  async stop(): Promise<void> {
    this.faultsImpl.dropAll();
    this.core.stop();
    await this.front.close();
  }

  addRegistration(reg: AppserviceRegistration): void {
    this.core.addAppservice(reg);
  }

  /** Creates an account with a password and logs it in on a new device. */
  async createUser(localpart: string, password: string, opts: { admin?: boolean; displayName?: string } = {}): Promise<{ userId: string; accessToken: string }> {
    const userId = `@${localpart}:${this.serverName}`;
    if (this.core.users.findCaseInsensitive(userId)) throw new Error(`User ${userId} already exists`);
    this.core.users.create(userId, { password, admin: opts.admin ?? false, displayname: opts.displayName ?? localpart });
    const token = this.core.users.issueToken(userId);
    return { userId, accessToken: token.token };
  }

  /** Current state of a room, in client format. */
  roomState(roomId: string): StateEvent[] {
    const room = this.core.rooms.get(roomId);
    if (!room) throw new Error(`Unknown room ${roomId}`);
    return [...room.state.values()].map((ev) => toClientEvent(ev) as StateEvent);
  }

  /** Every event of a room in order, in client format (redacted events pruned). */
  timeline(roomId: string): RoomEvent[] {
    const room = this.core.rooms.get(roomId);
    if (!room) throw new Error(`Unknown room ${roomId}`);
    return room.events.map((ev) => toClientEvent(ev));
  }

  /** Resolves once every event queued for the appservice(s) has been acknowledged. */
  waitForAppserviceIdle(asId?: string, timeoutMs = 10000): Promise<void> {
    if (asId !== undefined && !this.core.appservices.get(asId)) return Promise.reject(new Error(`Unknown appservice ${asId}`));
    return this.core.pusher.waitForIdle(asId, timeoutMs);
  }

  /** Transactions the appservice acknowledged (2xx). */
  transactionsPushed(asId: string): number {
    return this.core.pusher.transactionsPushed(asId);
  }

  /** Transaction requests sent to the appservice, retries included. */
  transactionAttempts(asId: string): number {
    return this.core.pusher.transactionAttempts(asId);
  }

  /** What the media repository holds for an mxc:// URI. */
  mediaInfo(mxcUri: string): MediaInfo | undefined {
    const m = /^mxc:\/\/([^/]+)\/([^/?#]+)$/.exec(mxcUri);
    const item = m ? this.core.media.get(m[1] ?? "", m[2] ?? "") : undefined;
    if (!item) return undefined;
    return {
      contentType: item.contentType,
      filename: item.filename,
      size: item.data?.length ?? 0,
      uploader: item.uploader,
      quarantined: item.quarantined,
    };
  }
}
