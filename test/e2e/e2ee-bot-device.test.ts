// A path for a bot to be a device in encrypted rooms, without Kuvert, two ways. A user in an
// appservice's namespace gets a device by appservice login with a fixed device ID, and an OlmMachine
// of @matrix-org/matrix-sdk-crypto-wasm drives it through the as_token with MSC3202 device
// masquerading (`user_id` and `org.matrix.msc3202.device_id`): it uploads its keys, receives its
// to-device messages, device lists and key counts by its own /sync, and decrypts what a
// matrix-js-sdk client sends into an encrypted room. The appservice's own user (sender_localpart)
// cannot /sync, but gets a device the same way and receives the same through the appservice's
// transactions (MSC2409 to-device messages, MSC3202 key counts and device lists): a small HTTP
// server here is the appservice. On the test homeserver in pass 1, on Synapse in pass 2 (with
// `experimental_features` msc3202_device_masquerading, msc2409_to_device_messages_enabled and
// msc3202_transaction_extensions, and the registration's `de.sorunome.msc2409.push_ephemeral` and
// `org.matrix.msc3202`).
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { TestHomeserver } from "@kuvert/test-homeserver";
import {
  DecryptionSettings,
  DeviceId,
  DeviceLists,
  initAsync,
  OlmMachine,
  RequestType,
  RoomId,
  ToDeviceRequest,
  TrustRequirement,
  UserId,
  type KeysClaimRequest,
  type KeysQueryRequest,
  type KeysUploadRequest,
  type SignatureUploadRequest,
} from "@matrix-org/matrix-sdk-crypto-wasm";
import { EventType } from "matrix-js-sdk";
import { artifactsDir, suitesOnSynapse, testServerName, waitFor } from "../support/harness.ts";
import { TestUser, type HomeserverAccess } from "../support/matrix.ts";
import { startSynapse, type Synapse } from "../support/synapse.ts";
import { tempDir } from "../support/tmp.ts";

type Json = Record<string, unknown>;
type Outgoing = KeysUploadRequest | KeysQueryRequest | KeysClaimRequest | ToDeviceRequest | SignatureUploadRequest | { id: string; type: RequestType; body: string };
type Answer = { status: number; json: Json; text: string };
/** A client-server request as one device of the appservice: the as_token and the masqueraded device. */
type DeviceRequest = (method: string, path: string, body?: unknown) => Promise<Answer>;
/** userId → deviceId → what MSC3202 reports per device. */
type PerDevice<T> = Record<string, Record<string, T>>;

const DEVICE = "KUVERTBOT";
/** The device of the appservice's own user. */
const OWN_DEVICE = "KUVERT";
/** Only what the device needs: room events reach an appservice by its transactions. */
const DEVICE_FILTER = JSON.stringify({ room: { rooms: [] }, presence: { not_types: ["*"] }, account_data: { not_types: ["*"] } });
/** Synapse's `experimental_features` (and the test homeserver's) for to-device messages, key counts and device lists in transactions. */
const TRANSACTION_FEATURES = { msc2409_to_device_messages_enabled: true, msc3202_transaction_extensions: true };

/**
 * The appservice's HTTP side, as far as this suite needs it: every transaction (AS API
 * `PUT /_matrix/app/v1/transactions/{txnId}`, or `/transactions/{txnId}` with `?access_token=` as
 * Synapse 1.67 sends it) with the hs_token is kept and answered `{}`.
 */
class TransactionSink {
  readonly received: Json[] = [];
  url = "";
  private readonly hsToken: string;
  private readonly server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const url = new URL(req.url ?? "/", "http://appservice");
      const token = req.headers.authorization?.replace(/^Bearer /, "") ?? url.searchParams.get("access_token");
      const reply = (status: number, body: Json) => res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
      if (req.method !== "PUT" || !/^(\/_matrix\/app\/v1)?\/transactions\/[^/]+$/.test(url.pathname)) return reply(404, { errcode: "M_UNRECOGNIZED", error: "Unrecognized request" });
      if (token !== this.hsToken) return reply(403, { errcode: "M_FORBIDDEN", error: "Bad hs_token" });
      this.received.push(JSON.parse(Buffer.concat(chunks).toString("utf8")) as Json);
      return reply(200, {});
    });
  });

  constructor(hsToken: string) {
    this.hsToken = hsToken;
  }

  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  stop(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

describe(`an appservice user's device with the wasm OlmMachine (${suitesOnSynapse() ? "Synapse" : "test homeserver"})`, () => {
  const asToken = `as-${randomBytes(16).toString("hex")}`;
  const hsToken = `hs-${randomBytes(16).toString("hex")}`;
  const sink = new TransactionSink(hsToken);
  let hs: TestHomeserver | undefined;
  let synapse: Synapse | undefined;
  let access: HomeserverAccess;
  let botId: string;
  let machine: OlmMachine;
  let since: string | undefined;
  let alice: TestUser;

  /** Requests as `deviceId` of `userId` (a namespaced user, or the appservice's own). */
  const asDevice =
    (userId: () => string, deviceId: string): DeviceRequest =>
    async (method, path, body) => {
      const sep = path.includes("?") ? "&" : "?";
      const res = await fetch(`${access.url}/_matrix/client/v3${path}${sep}user_id=${encodeURIComponent(userId())}&org.matrix.msc3202.device_id=${deviceId}`, {
        method,
        headers: { authorization: `Bearer ${asToken}`, "content-type": "application/json" },
        body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
      });
      const text = await res.text();
      return { status: res.status, json: JSON.parse(text) as Json, text };
    };
  const asBot = asDevice(() => botId, DEVICE);

  /** CS API "Appservice Login" with a fixed device ID: the device the machine will be. */
  const appserviceLogin = async (localpart: string, deviceId: string, userId: string): Promise<void> => {
    const login = await fetch(`${access.url}/_matrix/client/v3/login`, {
      method: "POST",
      headers: { authorization: `Bearer ${asToken}`, "content-type": "application/json" },
      body: JSON.stringify({ type: "m.login.application_service", identifier: { type: "m.id.user", user: localpart }, device_id: deviceId }),
    });
    const session = (await login.json()) as Json;
    assert.equal(login.status, 200, JSON.stringify(session));
    assert.deepEqual([session["user_id"], session["device_id"]], [userId, deviceId]);
  };

  /** Sends what a machine asks to send and tells it the answers (the loop a bot runs); answers the one-time-key counts uploads report. */
  const processOutgoing = async (olm: OlmMachine, send: DeviceRequest): Promise<number[]> => {
    const uploaded: number[] = [];
    for (const request of (await olm.outgoingRequests()) as Outgoing[]) {
      let res: Answer | undefined;
      if (request.type === RequestType.KeysUpload) {
        res = await send("POST", "/keys/upload", request.body);
        uploaded.push(Number((res.json["one_time_key_counts"] as Record<string, number> | undefined)?.["signed_curve25519"] ?? 0));
      } else if (request.type === RequestType.KeysQuery) res = await send("POST", "/keys/query", request.body);
      else if (request.type === RequestType.KeysClaim) res = await send("POST", "/keys/claim", request.body);
      else if (request.type === RequestType.SignatureUpload) res = await send("POST", "/keys/signatures/upload", request.body);
      else if (request instanceof ToDeviceRequest) res = await send("PUT", `/sendToDevice/${encodeURIComponent(request.event_type)}/${encodeURIComponent(request.txn_id)}`, request.body);
      if (!res || request.id === undefined) continue;
      assert.equal(res.status, 200, `${RequestType[request.type]}: ${res.text}`);
      await olm.markRequestAsSent(request.id, request.type, res.text);
    }
    return uploaded;
  };

  /** An encrypted room of alice's that `userId` joined (as the device `join` speaks for). */
  const encryptedRoomWith = async (userId: string, join: DeviceRequest): Promise<string> => {
    const { room_id: roomId } = await alice.client.createRoom({
      invite: [userId],
      initial_state: [{ type: EventType.RoomEncryption, state_key: "", content: { algorithm: "m.megolm.v1.aes-sha2" } }],
    });
    assert.equal((await join("POST", `/join/${encodeURIComponent(roomId)}`, {})).status, 200);
    await alice.until(`${userId} has joined`, () => alice.room(roomId)?.getMember(userId)?.membership === "join");
    await waitFor("alice to know the room is encrypted", () => alice.client.getCrypto()!.isEncryptionEnabledInRoom(roomId));
    return roomId;
  };

  /** One /sync of the device, its to-device messages, device lists and key counts handed to the machine. */
  const syncOnce = async (): Promise<number> => {
    const res = await asBot("GET", `/sync?timeout=0&filter=${encodeURIComponent(DEVICE_FILTER)}${since === undefined ? "" : `&since=${since}`}`);
    assert.equal(res.status, 200, res.text);
    const body = res.json as { next_batch: string; to_device?: { events: unknown[] }; device_lists?: { changed?: string[]; left?: string[] }; device_one_time_keys_count?: Record<string, number>; device_unused_fallback_key_types?: string[] };
    const toDevice = body.to_device?.events ?? [];
    const lists = new DeviceLists(
      (body.device_lists?.changed ?? []).map((u) => new UserId(u)),
      (body.device_lists?.left ?? []).map((u) => new UserId(u)),
    );
    const counts = new Map(Object.entries(body.device_one_time_keys_count ?? {}));
    await machine.receiveSyncChanges(JSON.stringify(toDevice), lists, counts, new Set(body.device_unused_fallback_key_types ?? []));
    // The next token acknowledges (and so deletes) these to-device messages: it is taken only
    // once the machine has them.
    since = body.next_batch;
    await processOutgoing(machine, asBot);
    return toDevice.length;
  };

  before(async () => {
    await sink.start();
    const registration = {
      id: "e2ee-bot",
      url: sink.url,
      as_token: asToken,
      hs_token: hsToken,
      sender_localpart: "kuvert-as",
      namespaces: { users: [{ regex: "@kuvertbot:.*", exclusive: true }], aliases: [], rooms: [] },
      rate_limited: false,
      // Ephemeral events, and with them to-device messages (MSC2409); key counts and device lists (MSC3202).
      "de.sorunome.msc2409.push_ephemeral": true,
      "org.matrix.msc3202": true,
    };
    if (suitesOnSynapse()) {
      mkdirSync(join(artifactsDir, "logs"), { recursive: true });
      synapse = await startSynapse({
        dir: tempDir("e2ee-bot-device-"),
        registrations: [registration],
        extra: { experimental_features: { msc3202_device_masquerading: true, ...TRANSACTION_FEATURES } },
        logFile: join(artifactsDir, "logs", "e2ee-bot-device.synapse.log"),
      });
      access = synapse;
    } else {
      const adminToken = `admin-${randomBytes(16).toString("hex")}`;
      hs = new TestHomeserver({ serverName: testServerName(), adminToken, registrations: [registration], experimentalFeatures: TRANSACTION_FEATURES });
      await hs.start();
      access = { url: hs.url, serverName: hs.serverName, adminToken };
    }
    botId = `@kuvertbot:${access.serverName}`;
    alice = await TestUser.create(access, "alice");
    await alice.client.initRustCrypto({ useIndexedDB: false });
    await alice.start();
    await initAsync();
  });

  after(async () => {
    alice?.stop();
    machine?.close();
    await hs?.stop();
    await synapse?.stop();
    await sink.stop();
  });

  it("the appservice's own user cannot /sync (Synapse: 500): its device is served by transactions, a namespaced user's syncs", async () => {
    const res = await fetch(`${access.url}/_matrix/client/v3/sync?timeout=0`, { headers: { authorization: `Bearer ${asToken}` } });
    assert.equal(res.status, 500);
    assert.equal(((await res.json()) as Json)["errcode"], "M_UNKNOWN");
  });

  it("a namespaced user gets its device by appservice login with a fixed device ID, and publishes its keys through the as_token", async () => {
    const register = await fetch(`${access.url}/_matrix/client/v3/register`, {
      method: "POST",
      headers: { authorization: `Bearer ${asToken}`, "content-type": "application/json" },
      body: JSON.stringify({ type: "m.login.application_service", username: "kuvertbot", inhibit_login: true }),
    });
    assert.equal(register.status, 200, await register.clone().text());
    await appserviceLogin("kuvertbot", DEVICE, botId);

    machine = await OlmMachine.initialize(new UserId(botId), new DeviceId(DEVICE));
    await processOutgoing(machine, asBot);
    await syncOnce();
    const seen = await alice.client.getCrypto()!.getUserDeviceInfo([botId], true);
    const device = seen.get(botId)?.get(DEVICE);
    assert.equal(device?.getIdentityKey(), machine.identityKeys.curve25519.toBase64(), "alice sees the bot's device with the machine's identity key");
  });

  it("the namespaced user's device receives the room key from a clerk's client by /sync and decrypts the clerk's messages", async () => {
    const roomId = await encryptedRoomWith(botId, asBot);

    const sent: string[] = [];
    for (const body of ["Erste verschlüsselte Nachricht", "Zweite, gleiche Sitzung"]) sent.push(await alice.say(roomId, body));
    let received = 0;
    await waitFor("the room key to reach the bot's device", async () => (received += await syncOnce()) > 0);

    const settings = new DecryptionSettings(TrustRequirement.Untrusted);
    const bodies: string[] = [];
    for (const eventId of sent) {
      const raw = (await asBot("GET", `/rooms/${encodeURIComponent(roomId)}/event/${encodeURIComponent(eventId)}`)).json;
      assert.equal(raw["type"], "m.room.encrypted", "the homeserver holds ciphertext");
      const decrypted = await machine.decryptRoomEvent(JSON.stringify(raw), new RoomId(roomId), settings);
      assert.equal(decrypted.sender.toString(), alice.userId);
      bodies.push(String(((JSON.parse(decrypted.event) as Json)["content"] as Json)["body"]));
    }
    assert.deepEqual(bodies, ["Erste verschlüsselte Nachricht", "Zweite, gleiche Sitzung"]);

    // Acknowledged to-device messages are gone: a sync from the latest token brings nothing again.
    assert.equal(await syncOnce(), 0);
  });

  describe("the appservice's own user, through the appservice's transactions (MSC2409, MSC3202)", () => {
    let ownId = "";
    let own: OlmMachine | undefined;
    const asOwn = asDevice(() => ownId, OWN_DEVICE);
    /** How many of `sink.received` the machine has been handed. */
    let handled = 0;
    /** The room events of the transactions, by event ID. */
    const roomEvents = new Map<string, Json>();
    /** The to-device messages for the own device, each as it came. */
    const delivered: Json[] = [];

    const toDeviceOf = (txn: Json): Json[] => ((txn["de.sorunome.msc2409.to_device"] ?? []) as Json[]).filter((m) => m["to_user_id"] === ownId && m["to_device_id"] === OWN_DEVICE);
    const keyCountsOf = (txn: Json): Record<string, number> | undefined => (txn["org.matrix.msc3202.device_one_time_key_counts"] as PerDevice<Record<string, number>> | undefined)?.[ownId]?.[OWN_DEVICE];

    /**
     * Hands the machine what each new transaction carries for the own device, in order, as a bot
     * does with a /sync response: to-device messages, device lists, key counts, fallback key types.
     */
    const handleTransactions = async (): Promise<void> => {
      while (handled < sink.received.length) {
        const txn = sink.received[handled++]!;
        for (const ev of (txn["events"] ?? []) as Json[]) roomEvents.set(String(ev["event_id"]), ev);
        const mine = toDeviceOf(txn);
        delivered.push(...mine);
        const events = JSON.stringify(mine.map((m) => ({ sender: m["sender"], type: m["type"], content: m["content"] })));
        const lists = txn["org.matrix.msc3202.device_lists"] as { changed?: string[]; left?: string[] } | undefined;
        const changes = new DeviceLists(
          (lists?.changed ?? []).map((u) => new UserId(u)),
          (lists?.left ?? []).map((u) => new UserId(u)),
        );
        const fallback = (txn["org.matrix.msc3202.device_unused_fallback_key_types"] as PerDevice<string[]> | undefined)?.[ownId]?.[OWN_DEVICE];
        const counts = keyCountsOf(txn);
        // As in /sync, an algorithm a transaction's counts leave out has no keys left; without counts
        // for the device, nothing is known of them.
        if (counts) await own!.receiveSyncChanges(events, changes, new Map(Object.entries(counts)), fallback && new Set(fallback));
        else await own!.receiveSyncChangesMsc4186(events, changes, new Map(), fallback && new Set(fallback));
        await processOutgoing(own!, asOwn);
      }
    };

    after(() => own?.close());

    it("gets device KUVERT by appservice login, publishes its keys by masquerading, and hears of it in a transaction", async () => {
      ownId = `@kuvert-as:${access.serverName}`;
      await appserviceLogin("kuvert-as", OWN_DEVICE, ownId);

      handled = sink.received.length;
      own = await OlmMachine.initialize(new UserId(ownId), new DeviceId(OWN_DEVICE));
      const [uploaded] = await processOutgoing(own, asOwn);
      assert.ok((uploaded ?? 0) > 0, "the device's keys and one-time keys are uploaded");
      // The upload changed the own user's device list: a transaction says so, with the device's key
      // counts (whether they include this upload's keys depends on when Synapse counts them).
      await waitFor("a transaction with the device's list change and key counts", () => sink.received.slice(handled).some((txn) => ((txn["org.matrix.msc3202.device_lists"] as { changed?: string[] } | undefined)?.changed ?? []).includes(ownId) && keyCountsOf(txn) !== undefined));
      await handleTransactions();
      const seen = await alice.client.getCrypto()!.getUserDeviceInfo([ownId], true);
      assert.equal(seen.get(ownId)?.get(OWN_DEVICE)?.getIdentityKey(), own.identityKeys.curve25519.toBase64(), "alice sees the device with the machine's identity key");
    });

    it("receives the clerk's room key in a transaction, once, with one one-time key fewer, and decrypts the clerk's messages from the transactions", async () => {
      const roomId = await encryptedRoomWith(ownId, asOwn);
      // Everything so far handed over (and any keys the machine wanted uploaded), the device's
      // one-time keys as the homeserver counts them: an upload of nothing answers the count.
      await handleTransactions();
      await processOutgoing(own!, asOwn);
      const before = (await asOwn("POST", "/keys/upload", {})).json["one_time_key_counts"] as Record<string, number>;

      const sent: string[] = [];
      for (const body of ["Erste verschlüsselte Nachricht an den Dienst", "Zweite, gleiche Sitzung"]) sent.push(await alice.say(roomId, body));
      // Not handed over before it arrives, so the machine uploads no keys meanwhile.
      await waitFor("the room key in a transaction", () => sink.received.slice(handled).some((txn) => toDeviceOf(txn).length > 0));
      const keyTransaction = sink.received.slice(handled).find((txn) => toDeviceOf(txn).length > 0)!;
      assert.equal(keyCountsOf(keyTransaction)?.["signed_curve25519"], (before["signed_curve25519"] ?? 0) - 1, "the clerk claimed one of the device's one-time keys");
      await waitFor("the clerk's messages in transactions", async () => {
        await handleTransactions();
        return sent.every((eventId) => roomEvents.has(eventId));
      });

      const settings = new DecryptionSettings(TrustRequirement.Untrusted);
      const bodies: string[] = [];
      for (const eventId of sent) {
        const raw = roomEvents.get(eventId)!;
        assert.equal(raw["type"], "m.room.encrypted", "the transaction carries ciphertext");
        const decrypted = await own!.decryptRoomEvent(JSON.stringify(raw), new RoomId(roomId), settings);
        assert.equal(decrypted.sender.toString(), alice.userId);
        bodies.push(String(((JSON.parse(decrypted.event) as Json)["content"] as Json)["body"]));
      }
      assert.deepEqual(bodies, ["Erste verschlüsselte Nachricht an den Dienst", "Zweite, gleiche Sitzung"]);
      const contents = delivered.map((m) => JSON.stringify(m["content"]));
      assert.equal(new Set(contents).size, contents.length, "each to-device message comes in one transaction only");
    });
  });
});
