import { Appservice, AppserviceRegistry } from "./appservices.ts";
import { AppservicePusher } from "./as-pusher.ts";
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
    this.keys.markDeviceListChanged(userId, this.bump());
  }

  addAppservice(reg: AppserviceRegistration): Appservice {
    const as = new Appservice(reg, this.serverName);
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
      if (as.ephemeral !== undefined && as.isInterestedInRoom(room.roomId, aliases, joined)) this.pusher.enqueueEphemeral(as, edu);
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
