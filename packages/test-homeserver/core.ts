import { Appservice, AppserviceRegistry } from "./appservices.ts";
import { AppservicePusher, type TransactionContents } from "./as-pusher.ts";
import { type StoredEvent, inviteRoomState, toClientEvent } from "./events.ts";
import type { DraftEvent } from "./event-auth.ts";
import type { Reply } from "./http.ts";
import { MediaStore } from "./media-store.ts";
import { type Room, RoomStore } from "./rooms.ts";
import { type AppserviceRegistration, type JsonObject, type RoomEvent, asJson } from "./types.ts";
import { KeyStore } from "./keys.ts";
import { UserStore } from "./users.ts";

export interface CoreOptions {
  serverName: string;
  /** Which Synapse to imitate where releases differ (synapse-1.67.ts). */
  synapse: "1.67" | "current";
  authenticatedMediaOnly: boolean;
  supportsAppservicePing: boolean;
  legacyUserAdmin: boolean;
  asRetryBaseMs: number;
  asRetryMaxMs: number;
  asRequestTimeoutMs: number;
  maxUploadBytes: number;
  sso: boolean;
  /** Synapse's `experimental_features.msc2409_to_device_messages_enabled`. */
  appserviceToDevice: boolean;
  /** Synapse's `experimental_features.msc3202_transaction_extensions`. */
  appserviceTransactionExtensions: boolean;
}

/** Wakes long-polling /sync requests whenever the stream moves. */
export class Notifier {
  private readonly waiters = new Set<() => void>();
  private stopped = false;

  get isStopped(): boolean {
    return this.stopped;
  }

  notify(): void {
    for (const waiter of [...this.waiters]) waiter();
  }

  /** Resolves at the next notify(), after `timeoutMs`, or at stop(). */
  wait(timeoutMs: number): Promise<void> {
    if (this.stopped || timeoutMs <= 0) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      this.waiters.add(done);
    });
  }

  stop(): void {
    this.stopped = true;
    this.notify();
  }
}

/** The homeserver's state: accounts, rooms, media, appservices, and the stream that orders them. */
export class Core {
  readonly opts: CoreOptions;
  readonly serverName: string;
  readonly users = new UserStore();
  readonly rooms = new RoomStore();
  readonly media = new MediaStore();
  readonly keys = new KeyStore();
  readonly appservices = new AppserviceRegistry();
  readonly pusher: AppservicePusher;
  readonly notifier = new Notifier();
  /** Client transaction IDs (CS API §"Transaction identifiers"), kept for the server's lifetime. */
  readonly txnCache = new Map<string, Promise<Reply>>();
  private streamPos = 0;

  constructor(opts: CoreOptions) {
    this.opts = opts;
    this.serverName = opts.serverName;
    this.pusher = new AppservicePusher({
      retryBaseMs: opts.asRetryBaseMs,
      retryMaxMs: opts.asRetryMaxMs,
      requestTimeoutMs: opts.asRequestTimeoutMs,
      legacyRoutes: opts.synapse === "1.67",
      serialize: (as, ev) => this.serializeForAppservice(as, ev),
      extensions: (as, contents) => this.transactionExtensions(as, contents),
    });
  }

  get pos(): number {
    return this.streamPos;
  }

  /** Advances the stream for a change that is not a room event (account data, typing, receipts). */
  bump(): number {
    this.streamPos++;
    this.notifier.notify();
    return this.streamPos;
  }

  /** Deletes devices with their keys and to-device inbox; their owner's device list changed (Synapse's `delete_devices`). */
  deleteDevices(userId: string, deviceIds: string[]): void {
    if (deviceIds.length === 0) return;
    for (const deviceId of deviceIds) {
      this.users.devices.get(userId)?.delete(deviceId);
      this.keys.deleteDevice(userId, deviceId);
    }
    this.deviceListChanged(userId);
  }

  /**
   * A user's devices or cross-signing keys changed: for /sync's device lists, and for the
   * transactions of appservices interested in the user (MSC3202, Synapse's
   * `_get_device_list_summary` and `_is_appservice_interested_in_device_lists_of_user` in
   * synapse/handlers/appservice.py: the user is the sender or in the namespace, or is joined to a
   * room the appservice is interested in). Synapse never fills `left` (a TODO, in 1.67 and still).
   */
  deviceListChanged(userId: string): void {
    this.keys.markDeviceListChanged(userId, this.bump());
    if (!this.opts.appserviceTransactionExtensions) return;
    for (const as of this.appservices.all()) {
      if (!as.transactionExtensions) continue;
      const interested = as.isInterestedInUser(userId) || this.rooms.roomsOf(userId).some((room) => room.membership(userId) === "join" && as.isInterestedInRoom(room.roomId, this.rooms.aliasesOf(room.roomId), room.members("join")));
      if (interested) this.pusher.enqueueDeviceListChange(as, userId);
    }
  }

  /**
   * CS API §"Send-to-Device messaging": messages into their devices' inboxes, for /sync. With
   * `msc2409_to_device_messages_enabled` also to each appservice that takes ephemeral events, those
   * for its users (sender or namespace), each with `to_user_id` and `to_device_id` (MSC2409, now MSC4203; Synapse's
   * `_get_to_device_messages`). Synapse keeps them in the inbox all the same (synapse#11423): a
   * device that also syncs gets them there too.
   */
  sendToDevice(sender: string, type: string, targets: Array<[userId: string, deviceId: string, content: JsonObject]>): void {
    if (targets.length === 0) return;
    const pos = this.bump();
    for (const [userId, deviceId, content] of targets) this.keys.deliver(userId, deviceId, { pos, sender, type, content });
    if (!this.opts.appserviceToDevice) return;
    for (const as of this.appservices.all()) {
      const messages = targets.filter(([userId]) => as.isInterestedInUser(userId)).map(([userId, deviceId, content]) => ({ to_user_id: userId, to_device_id: deviceId, sender, type, content }));
      this.pusher.enqueueToDevice(as, messages);
    }
  }

  /**
   * The MSC3202 fields of a new transaction, as Synapse's `_compute_msc3202_otk_counts_and_fallback_keys`
   * (synapse/appservice/scheduler.py) computes them for an appservice registered with
   * `org.matrix.msc3202` when `msc3202_transaction_extensions` is on: one-time-key counts and unused
   * fallback key types of every device of the appservice's sender, of its users joined to the rooms of
   * the transaction's events and EDUs, and of the recipients of its to-device messages; recomputed for
   * each transaction, changed or not. Counts name the algorithms that have keys (`{}` for none, unlike
   * /sync's `signed_curve25519: 0`); Synapse 1.73 and later also send them as `device_one_time_keys_count`.
   */
  private transactionExtensions(as: Appservice, contents: TransactionContents): JsonObject {
    if (!this.opts.appserviceTransactionExtensions || !as.transactionExtensions) return {};
    const users = new Set([as.senderId]);
    const roomIds = new Set([...contents.events.map((ev) => ev.roomId), ...contents.ephemeral.map((edu) => edu["room_id"]).filter((id) => typeof id === "string")]);
    for (const roomId of roomIds) {
      for (const member of this.rooms.get(roomId)?.members("join") ?? []) if (as.isInterestedInUser(member)) users.add(member);
    }
    for (const message of contents.toDevice) if (typeof message["to_user_id"] === "string") users.add(message["to_user_id"]);
    const counts: Record<string, JsonObject> = {};
    const fallbackKeys: Record<string, JsonObject> = {};
    for (const userId of users) {
      for (const deviceId of this.users.devices.get(userId)?.keys() ?? []) {
        (counts[userId] ??= {})[deviceId] = this.keys.oneTimeKeyCounts(userId, deviceId, []);
        (fallbackKeys[userId] ??= {})[deviceId] = this.keys.unusedFallbackKeyTypes(userId, deviceId);
      }
    }
    const fields: JsonObject = {};
    if (Object.keys(counts).length > 0) {
      fields["org.matrix.msc3202.device_one_time_key_counts"] = counts;
      if (this.opts.synapse === "current") fields["org.matrix.msc3202.device_one_time_keys_count"] = counts;
      fields["org.matrix.msc3202.device_unused_fallback_key_types"] = fallbackKeys;
    }
    if (contents.deviceListsChanged.length > 0) fields["org.matrix.msc3202.device_lists"] = { changed: contents.deviceListsChanged, left: [] };
    return fields;
  }

  addAppservice(reg: AppserviceRegistration): Appservice {
    const as = new Appservice(reg, this.serverName, this.opts.synapse);
    this.appservices.add(as);
    // The sender_localpart user exists implicitly.
    if (!this.users.get(as.senderId)) this.users.create(as.senderId, { appserviceId: as.id });
    return as;
  }

  isLocalUser(userId: string): boolean {
    return userId.endsWith(`:${this.serverName}`);
  }

  /** Appends an authorised event to a room and fans it out to /sync and appservices. */
  persist(room: Room, draft: DraftEvent, txn?: StoredEvent["txn"], ts?: number): StoredEvent {
    const ev = room.append(draft, ++this.streamPos, txn, this.rooms.findEvent, ts);
    this.rooms.indexEvent(ev);
    const aliases = this.rooms.aliasesOf(room.roomId);
    const joined = room.members("join");
    for (const as of this.appservices.all()) {
      if (as.isInterestedInEvent(ev, aliases, joined)) this.pusher.enqueue(as, ev);
    }
    this.notifier.notify();
    return ev;
  }

  /** Typing and receipt EDUs for appservices that asked for them (MSC2409, AS API §"Pushing events"). */
  pushEphemeral(room: Room, edu: JsonObject): void {
    const aliases = this.rooms.aliasesOf(room.roomId);
    const joined = room.members("join");
    for (const as of this.appservices.all()) {
      if (as.receivesEphemeral && as.isInterestedInRoom(room.roomId, aliases, joined)) this.pusher.enqueueEphemeral(as, edu);
    }
  }

  serializeForAppservice(as: Appservice, ev: StoredEvent): RoomEvent {
    const membership = ev.content["membership"];
    const withStrippedState = ev.type === "m.room.member" && (membership === "invite" || membership === "knock") && ev.stateKey !== undefined && as.isInterestedInUser(ev.stateKey);
    return toClientEvent(ev, withStrippedState ? { unsigned: { invite_room_state: inviteRoomState(ev).map(asJson) } } : {});
  }

  stop(): void {
    this.pusher.stop();
    this.notifier.stop();
  }
}
