// The bot's device: an OlmMachine of @matrix-org/matrix-sdk-crypto-wasm (the crypto Element uses)
// for the appservice's own user, with a fixed device ID, its state in Kuvert's database
// (crypto-store.ts). The appservice's own user cannot /sync; the device speaks through the
// appservice's as_token with MSC3202 device masquerading (`user_id` and
// `org.matrix.msc3202.device_id` on each request) and hears through the appservice's transactions
// (MSC2409 to-device messages, MSC3202 device lists and key counts), which transactions.ts stores
// for it.
//
// One process at a time owns the device (module.ts: a lease). Every call that changes the
// machine's state runs one after another and is saved before anything that depends on it leaves
// the process: the requests the machine produced, the acknowledgement of the to-device messages
// handed in, an encrypted event.
import { IDBFactory } from "fake-indexeddb";
import {
  DecryptionErrorCode,
  DecryptionSettings,
  DeviceId,
  DeviceLists,
  EncryptionSettings,
  HistoryVisibility,
  initAsync,
  OlmMachine,
  RequestType,
  RoomId,
  RoomMessageRequest,
  Sas,
  StoreHandle,
  ToDeviceRequest,
  TrustRequirement,
  UserId,
  VerificationMethod,
  VerificationRequestPhase,
  type KeysClaimRequest,
  type KeysQueryRequest,
  type KeysUploadRequest,
  type SignatureUploadRequest,
} from "@matrix-org/matrix-sdk-crypto-wasm";
import type { Database } from "../db/database.ts";
import { logger } from "../log.ts";
import { HomeserverError, type Homeserver } from "../matrix/homeserver.ts";
import { CryptoStore } from "./crypto-store.ts";

const log = logger("e2ee-device");

type Json = Record<string, unknown>;
type Outgoing = KeysUploadRequest | KeysQueryRequest | KeysClaimRequest | ToDeviceRequest | SignatureUploadRequest | { id?: string; type: RequestType; body: string };

/** What one transaction carried for the device (transactions.ts). */
export interface DeviceUpdate {
  toDevice: Json[];
  changed: string[];
  left: string[];
  /** The device's one-time-key counts; null when the transaction had none for it. */
  keyCounts: Record<string, number> | null;
  fallback: string[] | null;
  /** A verification event of a room (decrypted), for an in-room verification. */
  roomEvent?: Json;
}

/** Where an interactive verification of the bot's device (SAS, by to-device messages) stands. */
export interface VerificationState {
  flowId: string;
  userId: string;
  deviceId: string | null;
  /** requested: accepted, waiting for the other side to start; comparing: the emoji are there to compare; verified; cancelled. */
  state: "requested" | "comparing" | "verified" | "cancelled";
  /** The seven emoji both sides show (symbol and English name), once there. */
  emoji: { symbol: string; description: string }[] | null;
  reason: string | null;
}

/** A room event as the clerk's client sent it, decrypted. */
export interface DecryptedEvent {
  type: string;
  content: Json;
  /** The sender's device's Curve25519 key, as the Olm session that brought the room key says. */
  senderKey: string;
}

export interface DeviceOptions {
  deviceId: string;
  secret: string;
  /** Whether a room is end-to-end encrypted (what the device sends there itself, verification events, is encrypted then). */
  isEncrypted(roomId: string): Promise<boolean>;
}

/** An encrypted room event the device cannot decrypt (yet): why, as the crypto says it. */
export class UndecryptableEventError extends Error {
  readonly code: string | undefined;
  constructor(code: string | undefined, description: string) {
    super(`the event cannot be decrypted: ${code ?? "error"}: ${description}`);
    this.name = "UndecryptableEventError";
    this.code = code;
  }
}

/** The wasm is loaded once per process. */
let loaded: Promise<void> | undefined;

export class BotDevice {
  readonly userId: string;
  readonly deviceId: string;
  readonly #hs: Homeserver;
  readonly #machine: OlmMachine;
  readonly #store: CryptoStore;
  readonly #isEncrypted: (roomId: string) => Promise<boolean>;
  #turn: Promise<unknown> = Promise.resolve();
  #closed = false;
  #crossSigningProblem: string | null = null;

  private constructor(hs: Homeserver, machine: OlmMachine, store: CryptoStore, deviceId: string, isEncrypted: (roomId: string) => Promise<boolean>) {
    this.#isEncrypted = isEncrypted;
    this.#hs = hs;
    this.userId = hs.botUserId;
    this.deviceId = deviceId;
    this.#machine = machine;
    this.#store = store;
  }

  /**
   * Takes the device over for this process: its state from the database (none at first: a new
   * account), the homeserver's device by appservice login with the fixed ID when it has none yet,
   * and whatever keys the machine wants published.
   */
  static async open(db: Database, hs: Homeserver, opts: DeviceOptions): Promise<BotDevice> {
    await (loaded ??= initAsync());
    // A fresh IndexedDB for each takeover: what a process held before it lost the device is not read again.
    const store = await CryptoStore.restore(db, { name: `bot.${opts.deviceId}`, secret: opts.secret, factory: new IDBFactory() });
    const machine = await OlmMachine.initFromStore(new UserId(hs.botUserId), new DeviceId(opts.deviceId), await store.open(StoreHandle.openWithKey));
    const device = new BotDevice(hs, machine, store, opts.deviceId, opts.isEncrypted);
    try {
      await device.#ensureHomeserverDevice();
      await device.#serially(() => device.#flush());
      await device.#serially(() => device.#crossSign());
    } catch (err) {
      device.close();
      throw err;
    }
    log.info({ deviceId: opts.deviceId, ed25519: machine.identityKeys.ed25519.toBase64() }, "the bot's device is ready");
    return device;
  }

  /**
   * Why the bot's cross-signing keys are not on the homeserver, or null when they are (then
   * Element shows the device as verified by its owner, and staff verify the bot as a user).
   */
  get crossSigningProblem(): string | null {
    return this.#crossSigningProblem;
  }

  /** The device's Ed25519 key (its fingerprint, as Element shows it when staff verify the bot) and Curve25519 key. */
  get identity(): { ed25519: string; curve25519: string } {
    return { ed25519: this.#machine.identityKeys.ed25519.toBase64(), curve25519: this.#machine.identityKeys.curve25519.toBase64() };
  }

  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Hands the machine what transactions carried for it, in order; the caller deletes them once this
   * resolved. Answers who sent verification messages among them (their requests want an answer).
   */
  async receive(updates: DeviceUpdate[]): Promise<string[]> {
    const verifiers = new Set<string>();
    for (const u of updates) for (const m of [...u.toDevice, ...(u.roomEvent ? [u.roomEvent] : [])]) if (isVerificationEvent(m) && typeof m["sender"] === "string") verifiers.add(m["sender"]);
    await this.#serially(async () => {
      for (const u of updates) {
        if (u.roomEvent) {
          await this.#machine.receiveVerificationEvent(JSON.stringify(u.roomEvent), new RoomId(String(u.roomEvent["room_id"])));
          continue;
        }
        const lists = new DeviceLists(
          u.changed.map((id) => new UserId(id)),
          u.left.map((id) => new UserId(id)),
        );
        const events = JSON.stringify(u.toDevice.map((m) => ({ sender: m["sender"], type: m["type"], content: m["content"] })));
        const fallback = u.fallback ? new Set(u.fallback) : undefined;
        // As in /sync: without counts for the device nothing is known of them (an algorithm left out of counts has none left).
        if (u.keyCounts) await this.#machine.receiveSyncChanges(events, lists, new Map(Object.entries(u.keyCounts)), fallback);
        else await this.#machine.receiveSyncChangesMsc4186(events, lists, new Map(), fallback);
      }
      await this.#save();
      await this.#flush();
    });
    return [...verifiers];
  }

  /**
   * Moves the interactive verifications `userId` asked for along, as far as the device can alone
   * (CS API §"Short Authentication String (SAS) verification", by to-device messages): a request
   * from someone `allowed` is accepted for SAS and one from anyone else cancelled; a SAS the other
   * side started is accepted; once both sides have the keys, the emoji are there to compare. The
   * device never confirms by itself: a person compares the emoji (confirm()).
   */
  async verifications(userId: string, allowed: boolean): Promise<VerificationState[]> {
    return this.#serially(async () => {
      const states: VerificationState[] = [];
      for (const request of this.#machine.getVerificationRequests(new UserId(userId))) {
        if (request.isSelfVerification()) continue;
        const phase = request.phase();
        const base = { flowId: request.flowId, userId, deviceId: request.otherDeviceId?.toString() ?? null };
        if (phase === VerificationRequestPhase.Requested && !request.weStarted()) {
          const answer = allowed ? request.acceptWithMethods([VerificationMethod.SasV1]) : request.cancel();
          if (answer) await this.#answer(answer as Outgoing);
        }
        const verification = request.getVerification();
        if (verification instanceof Sas && !verification.weStarted() && !verification.hasBeenAccepted() && !verification.isCancelled()) {
          const answer = allowed ? verification.accept() : verification.cancel();
          if (answer) await this.#answer(answer as Outgoing);
        }
        await this.#save();
        if (request.isCancelled() || (verification instanceof Sas && verification.isCancelled())) {
          states.push({ ...base, state: "cancelled", emoji: null, reason: cancelReason(request.cancelInfo ?? (verification instanceof Sas ? verification.cancelInfo() : undefined)) ?? (allowed ? "cancelled" : "not one of the staff") });
        } else if (request.isDone() || (verification instanceof Sas && verification.isDone())) {
          states.push({ ...base, state: "verified", emoji: null, reason: null });
        } else if (verification instanceof Sas && verification.canBePresented()) {
          const emoji = (verification.emoji() ?? []).map((e) => ({ symbol: e.symbol, description: e.description }));
          states.push({ ...base, state: "comparing", emoji, reason: null });
        } else states.push({ ...base, state: "requested", emoji: null, reason: null });
      }
      return states;
    });
  }

  /** A person compared the emoji: they match (the device confirms and trusts the other device) or not (it cancels). */
  async decide(userId: string, flowId: string, match: boolean): Promise<void> {
    await this.#serially(async () => {
      const verification = this.#machine.getVerification(new UserId(userId), flowId);
      if (!(verification instanceof Sas)) return;
      const answers = match ? await verification.confirm() : [verification.cancelWithCode("m.mismatched_sas")].filter((a) => a !== undefined);
      await this.#save();
      for (const answer of answers) await this.#answer(answer as Outgoing);
    });
  }

  /**
   * Encrypts an event for a room (CS API §"Messaging algorithms", m.megolm.v1.aes-sha2): the
   * members' devices are looked up, Olm sessions made where missing, the room key shared with every
   * device of every joined or invited member (a new Megolm session when someone left since the last
   * share), and the event encrypted. Saved before it is answered: the caller sends the result.
   */
  async encrypt(roomId: string, type: string, content: Json): Promise<Json> {
    const users = await this.#recipients(roomId);
    return this.#serially(() => this.#encrypt(roomId, users, type, content));
  }

  /** The room's joined and invited members: whose devices get its keys. */
  async #recipients(roomId: string): Promise<UserId[]> {
    const members = (await this.#hs.members(roomId)).entries();
    return [...members].filter(([, m]) => m === "join" || m === "invite").map(([id]) => new UserId(id));
  }

  async #encrypt(roomId: string, users: UserId[], type: string, content: Json): Promise<Json> {
    const room = new RoomId(roomId);
    await this.#machine.updateTrackedUsers(users.map((u) => u.clone()));
    await this.#flush(false);
    const claim = await this.#machine.getMissingSessions(users.map((u) => u.clone()));
    if (claim) await this.#answer(claim);
    const settings = new EncryptionSettings();
    settings.historyVisibility = HistoryVisibility.Shared;
    const shares = await this.#machine.shareRoomKey(room, users, settings);
    await this.#save();
    for (const share of shares) await this.#answer(share);
    const encrypted = await this.#machine.encryptRoomEvent(room, type, JSON.stringify(content));
    await this.#save();
    return JSON.parse(encrypted) as Json;
  }

  /** Decrypts a room event; throws UndecryptableEventError when it cannot, e.g. while its room key has not arrived. */
  async decrypt(event: Json): Promise<DecryptedEvent> {
    return this.#serially(async () => {
      let decrypted;
      try {
        decrypted = await this.#machine.decryptRoomEvent(JSON.stringify(event), new RoomId(String(event["room_id"])), new DecryptionSettings(TrustRequirement.Untrusted));
      } catch (err) {
        // The wasm's MegolmDecryptionError: a code (DecryptionErrorCode) and a description, no message.
        const e = err as { code?: number; description?: string; message?: string };
        throw new UndecryptableEventError(e.code === undefined ? undefined : DecryptionErrorCode[e.code], e.description ?? e.message ?? String(err));
      }
      const clear = JSON.parse(decrypted.event) as { type: string; content: Json };
      // Decryption may have stored what it learned (e.g. the sender's data of a session).
      await this.#save();
      return { type: clear.type, content: clear.content ?? {}, senderKey: decrypted.senderCurve25519Key };
    });
  }

  /** Starts a new Megolm session for the room at its next message (someone left it). */
  async rotate(roomId: string): Promise<void> {
    await this.#serially(async () => {
      await this.#machine.invalidateGroupSession(new RoomId(roomId));
      await this.#save();
    });
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#machine.close();
    this.#store.close();
  }

  /** One call at a time; the next waits for the one before, whatever became of it. */
  #serially<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#turn.then(() => {
      if (this.#closed) throw new Error("the bot's device is closed (another process owns it now, or Kuvert is stopping)");
      return fn();
    });
    this.#turn = run.catch(() => undefined);
    return run;
  }

  async #save(): Promise<void> {
    await this.#store.saveChanges();
  }

  /** Sends what the machine asks to send (key uploads and queries, claims, to-device messages), saved first. */
  async #flush(roomMessages = true): Promise<void> {
    // Answers may make new requests (more one-time keys after an upload, a query after a list
    // change); a few rounds settle them, the rest wait for the next call. Room messages (in-room
    // verification) are left alone while one is being encrypted: its encryption flushes too.
    for (let round = 0; round < 4; round++) {
      const requests = ((await this.#machine.outgoingRequests()) as Outgoing[]).filter((r) => roomMessages || !(r instanceof RoomMessageRequest));
      if (requests.length === 0) return;
      await this.#save();
      for (const request of requests) await this.#answer(request);
    }
  }

  /** One request of the machine, sent as the device, and its answer handed back. */
  async #answer(request: Outgoing): Promise<void> {
    let path: string;
    let method = "POST";
    if (request instanceof ToDeviceRequest) {
      method = "PUT";
      path = `/_matrix/client/v3/sendToDevice/${encodeURIComponent(request.event_type)}/${encodeURIComponent(request.txn_id)}`;
    } else if (request.type === RequestType.KeysUpload) path = "/_matrix/client/v3/keys/upload";
    else if (request.type === RequestType.KeysQuery) path = "/_matrix/client/v3/keys/query";
    else if (request.type === RequestType.KeysClaim) path = "/_matrix/client/v3/keys/claim";
    else if (request.type === RequestType.SignatureUpload) path = "/_matrix/client/v3/keys/signatures/upload";
    else if (request instanceof RoomMessageRequest) {
      // A verification event into a direct message room: encrypted there when the room is.
      let type = request.event_type;
      let content = JSON.parse(request.body) as Json;
      if (await this.#isEncrypted(request.room_id)) {
        content = await this.#encrypt(request.room_id, await this.#recipients(request.room_id), type, content);
        type = "m.room.encrypted";
      }
      const eventId = await this.#hs.sendAsIs(request.room_id, type, content, `verification:${request.txn_id}`);
      await this.#machine.markRequestAsSent(request.id, request.type, JSON.stringify({ event_id: eventId }));
      return;
    } else {
      log.warn({ type: RequestType[request.type] }, "the device asked for a request Kuvert does not make");
      return;
    }
    const answer = await this.#request(method, path, request.body);
    if (request.id !== undefined) await this.#machine.markRequestAsSent(request.id, request.type, answer);
  }

  /** A client-server request as the device: the as_token, `user_id` and MSC3202's `org.matrix.msc3202.device_id`. */
  async #request(method: string, path: string, body: string | undefined): Promise<string> {
    const query = new URLSearchParams({ user_id: this.userId, "org.matrix.msc3202.device_id": this.deviceId });
    let res: Response;
    try {
      res = await fetch(`${this.#hs.url}${path}?${query}`, { method, headers: { authorization: this.#hs.authorization, "content-type": "application/json" }, ...(body === undefined ? {} : { body }) });
    } catch (err) {
      throw new HomeserverError(0, "K_HOMESERVER_UNREACHABLE", `the homeserver could not be reached: ${(err as Error).message}`);
    }
    const text = await res.text();
    if (!res.ok) {
      const parsed = safeJson(text);
      throw new HomeserverError(res.status, String(parsed["errcode"] ?? "M_UNKNOWN"), String(parsed["error"] ?? text.slice(0, 200)), typeof parsed["retry_after_ms"] === "number" ? parsed["retry_after_ms"] : undefined);
    }
    return text;
  }

  /**
   * Cross-signs the bot (CS API §"Cross-signing"): a master key, a self-signing key that signs the
   * device, a user-signing key; published once, when the homeserver has no master key for the bot.
   * The first upload of an account's keys needs no user-interactive auth on current Synapse
   * (MSC3967, Synapse ≥ 1.89); older Synapse asks for it, which the appservice's user cannot give
   * (it has no password): then the device goes on without, and readiness says so.
   */
  async #crossSign(): Promise<void> {
    const query = JSON.parse(await this.#request("POST", "/_matrix/client/v3/keys/query", JSON.stringify({ device_keys: { [this.userId]: [] } }))) as { master_keys?: Record<string, unknown> };
    const status = await this.#machine.crossSigningStatus();
    if (query.master_keys?.[this.userId] !== undefined && status.hasMaster && status.hasSelfSigning) {
      this.#crossSigningProblem = null;
      return;
    }
    const requests = await this.#machine.bootstrapCrossSigning(true);
    await this.#save();
    if (requests.uploadKeysRequest) await this.#answer(requests.uploadKeysRequest as Outgoing);
    try {
      await this.#request("POST", "/_matrix/client/v3/keys/device_signing/upload", requests.uploadSigningKeysRequest.body);
    } catch (err) {
      if (!(err instanceof HomeserverError)) throw err;
      // 401: user-interactive auth wanted; Synapse 1.67 answers an appservice 500 ("Cannot validate
      // a user without an access token"). Encryption works without; it is tried again at the next start.
      this.#crossSigningProblem = `the homeserver did not take the bot's cross-signing keys (${err.message}); Synapse before 1.89 asks for interactive authentication, which an appservice cannot give. The device works without; staff compare its session key instead`;
      log.warn({ deviceId: this.deviceId }, this.#crossSigningProblem);
      return;
    }
    await this.#answer(requests.uploadSignaturesRequest);
    this.#crossSigningProblem = null;
    log.info({ deviceId: this.deviceId }, "the bot is cross-signed: its device is signed by its self-signing key");
  }

  /**
   * CS API §"Appservice Login" with the fixed device ID, once: the homeserver then lists the
   * device, and keys can be published for it. The access token the login answers is not kept: the
   * device speaks through the as_token.
   */
  async #ensureHomeserverDevice(): Promise<void> {
    const query = new URLSearchParams({ user_id: this.userId });
    const existing = await fetch(`${this.#hs.url}/_matrix/client/v3/devices/${encodeURIComponent(this.deviceId)}?${query}`, { headers: { authorization: this.#hs.authorization } });
    if (existing.ok) return;
    if (existing.status !== 404) throw new HomeserverError(existing.status, "M_UNKNOWN", `looking up the bot's device: ${(await existing.text()).slice(0, 200)}`);
    const localpart = this.userId.slice(1, this.userId.indexOf(":"));
    const login = await fetch(`${this.#hs.url}/_matrix/client/v3/login`, {
      method: "POST",
      headers: { authorization: this.#hs.authorization, "content-type": "application/json" },
      body: JSON.stringify({ type: "m.login.application_service", identifier: { type: "m.id.user", user: localpart }, device_id: this.deviceId, initial_device_display_name: "Kuvert" }),
    });
    const text = await login.text();
    if (!login.ok) {
      const parsed = safeJson(text);
      throw new HomeserverError(login.status, String(parsed["errcode"] ?? "M_UNKNOWN"), `the bot's device could not be made by appservice login: ${String(parsed["error"] ?? text.slice(0, 200))}`);
    }
    log.info({ deviceId: this.deviceId }, "the bot's device was made on the homeserver");
  }
}

/** Why a verification was cancelled, and by which side. */
function cancelReason(info: { reason(): string; cancelCode(): string; cancelledbyUs(): boolean } | undefined): string | undefined {
  if (!info) return undefined;
  return `${info.reason()} (${info.cancelCode()}, by ${info.cancelledbyUs() ? "Kuvert" : "the other side"})`;
}

/** An event of an interactive verification: to-device, or in a room (the request there is a message). */
export function isVerificationEvent(event: Json): boolean {
  const type = event["type"];
  if (typeof type !== "string") return false;
  if (type.startsWith("m.key.verification.")) return true;
  return type === "m.room.message" && (event["content"] as Json | undefined)?.["msgtype"] === "m.key.verification.request";
}

function safeJson(text: string): Json {
  try {
    const parsed = JSON.parse(text) as unknown;
    return parsed && typeof parsed === "object" ? (parsed as Json) : {};
  } catch {
    return {};
  }
}
