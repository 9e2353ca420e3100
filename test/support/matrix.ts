// People in the tests: clerks and staff as matrix-js-sdk clients, the way Element uses the
// homeserver. Users are made through Synapse's admin API, so the same code runs against
// the test homeserver and a real Synapse.
import { randomBytes } from "node:crypto";
import { ClientEvent, createClient, EventType, type MatrixEvent, MsgType, RoomEvent, RoomMemberEvent, SyncState, type MatrixClient, type Room } from "matrix-js-sdk";
import { logger as globalSdkLogger, type Logger } from "matrix-js-sdk/lib/logger.js";

// The sdk logs every optional endpoint a homeserver lacks; failures that matter reach the tests
// as rejected promises. KUVERT_TEST_SDK_LOG=1 shows its log.
const verbose = process.env.KUVERT_TEST_SDK_LOG === "1";
const write = (...msg: unknown[]) => verbose && console.error("[matrix-js-sdk]", ...msg);
const quietLogger: Logger = { trace: write, debug: write, info: write, warn: write, error: write, getChild: () => quietLogger };
// Parts of the sdk log through its global loglevel logger, whose children each set level DEBUG;
// children copy the root's methodFactory, so a silent one keeps them all quiet.
if (!verbose) {
  const root = globalSdkLogger as unknown as { methodFactory: () => () => void; rebuild(): void };
  root.methodFactory = () => () => undefined;
  root.rebuild();
}

export interface HomeserverAccess {
  url: string;
  serverName: string;
  adminToken: string;
}

async function adminRequest(hs: HomeserverAccess, method: string, path: string, body?: unknown): Promise<Record<string, unknown>> {
  const res = await fetch(`${hs.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${hs.adminToken}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = (await res.json().catch(() => ({}))) as Record<string, unknown>;
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

/** A unique localpart, so that suites can share a real homeserver. */
export function uniqueLocalpart(prefix: string): string {
  return `${prefix}-${randomBytes(4).toString("hex")}`;
}

/** Creates an account with a password (Synapse admin API: PUT /_synapse/admin/v2/users/{userId}); answers its user ID. */
export async function createAccount(hs: HomeserverAccess, localpart: string, password: string, displayName?: string): Promise<string> {
  const userId = `@${localpart}:${hs.serverName}`;
  await adminRequest(hs, "PUT", `/_synapse/admin/v2/users/${encodeURIComponent(userId)}`, { password, displayname: displayName ?? localpart, admin: false });
  return userId;
}

/**
 * Downloads media as Element does: through authenticated media (CS API §"GET
 * /_matrix/client/v1/media/download/{serverName}/{mediaId}") when the homeserver advertises
 * Matrix 1.11, else through the older unauthenticated media API (Synapse before 1.120).
 */
export async function downloadAsClient(baseUrl: string, accessToken: string, mxc: string): Promise<{ status: number; body: Buffer }> {
  const match = /^mxc:\/\/([^/]+)\/([^/?#]+)$/.exec(mxc);
  if (!match) throw new Error(`not an mxc URI: ${mxc}`);
  const { versions } = (await (await fetch(`${baseUrl}/_matrix/client/versions`)).json()) as { versions: string[] };
  const authenticated = versions.includes("v1.11") || versions.some((v) => /^v1\.(1[1-9]|[2-9]\d)$/.test(v));
  const url = authenticated ? `${baseUrl}/_matrix/client/v1/media/download/${match[1]}/${match[2]}` : `${baseUrl}/_matrix/media/v3/download/${match[1]}/${match[2]}`;
  const res = await fetch(url, authenticated ? { headers: { authorization: `Bearer ${accessToken}` } } : {});
  return { status: res.status, body: Buffer.from(await res.arrayBuffer()) };
}

export class TestUser {
  readonly userId: string;
  readonly client: MatrixClient;
  readonly password: string;
  #started = false;

  private constructor(userId: string, password: string, client: MatrixClient) {
    this.userId = userId;
    this.password = password;
    this.client = client;
  }

  /** Creates an account (Synapse admin API: PUT /_synapse/admin/v2/users/{userId}) and signs in with its password. */
  static async create(hs: HomeserverAccess, prefix: string, displayName?: string): Promise<TestUser> {
    const localpart = uniqueLocalpart(prefix);
    const password = randomBytes(12).toString("base64url");
    await createAccount(hs, localpart, password, displayName ?? prefix);
    const loginClient = createClient({ baseUrl: hs.url, logger: quietLogger });
    const login = await loginClient.loginRequest({ type: "m.login.password", identifier: { type: "m.id.user", user: localpart }, password });
    const client = createClient({ baseUrl: hs.url, userId: login.user_id, accessToken: login.access_token, deviceId: login.device_id, logger: quietLogger });
    return new TestUser(login.user_id, password, client);
  }

  /** Starts syncing, as Element does, and waits until the first sync is through. */
  async start(): Promise<void> {
    if (this.#started) return;
    this.#started = true;
    const prepared = new Promise<void>((resolve, reject) => {
      const onSync = (state: SyncState) => {
        if (state === SyncState.Prepared || state === SyncState.Syncing) {
          this.client.off(ClientEvent.Sync, onSync);
          resolve();
        } else if (state === SyncState.Error) reject(new Error(`${this.userId} could not sync`));
      };
      this.client.on(ClientEvent.Sync, onSync);
    });
    await this.client.startClient({ initialSyncLimit: 20, lazyLoadMembers: false });
    await prepared;
  }

  stop(): void {
    this.client.stopClient();
  }

  /** Resolves when the condition holds, checked now and after every sync update. */
  async until<T>(what: string, check: () => T | undefined | null | false, timeoutMs = 15_000): Promise<T> {
    const now = check();
    if (now) return now;
    return new Promise<T>((resolve, reject) => {
      const onChange = () => {
        const value = check();
        if (value) {
          cleanup();
          resolve(value);
        }
      };
      const cleanup = () => {
        clearTimeout(timer);
        clearInterval(poll);
        this.client.off(ClientEvent.Sync, onChange);
        this.client.off(RoomEvent.Timeline, onChange);
        this.client.off(RoomMemberEvent.Membership, onChange);
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`${this.userId}: timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      const poll = setInterval(onChange, 250);
      this.client.on(ClientEvent.Sync, onChange);
      this.client.on(RoomEvent.Timeline, onChange);
      this.client.on(RoomMemberEvent.Membership, onChange);
    });
  }

  room(roomId: string): Room | null {
    return this.client.getRoom(roomId);
  }

  membership(roomId: string): string | undefined {
    return this.room(roomId)?.getMyMembership();
  }

  async waitForInvite(roomId: string, timeoutMs?: number): Promise<Room> {
    return this.until(
      `an invite to ${roomId}`,
      () => {
        const room = this.room(roomId);
        return room && room.getMyMembership() === "invite" ? room : undefined;
      },
      timeoutMs,
    );
  }

  /** Joins the room as a clerk does when accepting the invite in Element. */
  async join(roomId: string): Promise<Room> {
    await this.client.joinRoom(roomId);
    return this.until(`being joined to ${roomId}`, () => {
      const room = this.room(roomId);
      return room && room.getMyMembership() === "join" ? room : undefined;
    });
  }

  timeline(roomId: string): MatrixEvent[] {
    return this.room(roomId)?.getLiveTimeline().getEvents() ?? [];
  }

  async waitForEvent(roomId: string, what: string, predicate: (e: MatrixEvent) => boolean, timeoutMs?: number): Promise<MatrixEvent> {
    return this.until(what, () => this.timeline(roomId).find(predicate), timeoutMs);
  }

  /** Downloads media as this person's Element would. */
  download(mxc: string): Promise<{ status: number; body: Buffer }> {
    return downloadAsClient(this.client.baseUrl, this.client.getAccessToken()!, mxc);
  }

  /**
   * Sets up cross-signing as Element does at a user's first sign-in (its Rust crypto must be
   * initialised): CS API §"Cross-signing", the keys' upload with user-interactive auth (the password).
   */
  async bootstrapCrossSigning(): Promise<void> {
    await this.client.getCrypto()!.bootstrapCrossSigning({
      authUploadDeviceSigningKeys: async (makeRequest) => {
        try {
          await makeRequest(null);
        } catch (err) {
          const session = (err as { data?: { session?: string } }).data?.session;
          if (session === undefined) throw err;
          await makeRequest({ type: "m.login.password", identifier: { type: "m.id.user", user: this.userId }, password: this.password, session });
        }
      },
    });
  }

  /** Sends a text message and answers its event id. */
  async say(roomId: string, body: string): Promise<string> {
    const res = await this.client.sendEvent(roomId, EventType.RoomMessage, { msgtype: MsgType.Text, body });
    return res.event_id;
  }
}
