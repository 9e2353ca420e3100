// A path for a bot to be a device in encrypted rooms, without Kuvert: a user in an appservice's
// namespace gets a device by appservice login with a fixed device ID, and an OlmMachine of
// @matrix-org/matrix-sdk-crypto-wasm drives it through the as_token with MSC3202 device
// masquerading (`user_id` and `org.matrix.msc3202.device_id`): it uploads its keys, receives its
// to-device messages, device lists and key counts by its own /sync, and decrypts what a
// matrix-js-sdk client sends into an encrypted room. Synapse does not sync the appservice's own
// user (sender_localpart), so the device is a namespaced user's. On the test homeserver in pass 1,
// on Synapse (with `experimental_features.msc3202_device_masquerading`) in pass 2.
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
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

const DEVICE = "KUVERTBOT";
/** Only what the device needs: room events reach an appservice by its transactions. */
const DEVICE_FILTER = JSON.stringify({ room: { rooms: [] }, presence: { not_types: ["*"] }, account_data: { not_types: ["*"] } });

describe(`an appservice user's device with the wasm OlmMachine (${suitesOnSynapse() ? "Synapse" : "test homeserver"})`, () => {
  const asToken = `as-${randomBytes(16).toString("hex")}`;
  const registration = {
    id: "e2ee-bot",
    url: null,
    as_token: asToken,
    hs_token: `hs-${randomBytes(16).toString("hex")}`,
    sender_localpart: "kuvert-as",
    namespaces: { users: [{ regex: "@kuvertbot:.*", exclusive: true }], aliases: [], rooms: [] },
    rate_limited: false,
  };
  let hs: TestHomeserver | undefined;
  let synapse: Synapse | undefined;
  let access: HomeserverAccess;
  let botId: string;
  let machine: OlmMachine;
  let since: string | undefined;
  let alice: TestUser;

  /** A client-server request as the bot's device: the as_token and the masqueraded device. */
  const asBot = async (method: string, path: string, body?: unknown): Promise<{ status: number; json: Json; text: string }> => {
    const sep = path.includes("?") ? "&" : "?";
    const res = await fetch(`${access.url}/_matrix/client/v3${path}${sep}user_id=${encodeURIComponent(botId)}&org.matrix.msc3202.device_id=${DEVICE}`, {
      method,
      headers: { authorization: `Bearer ${asToken}`, "content-type": "application/json" },
      body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, json: JSON.parse(text) as Json, text };
  };

  /** Sends what the machine asks to send and tells it the answers (the loop a bot runs). */
  const processOutgoing = async (): Promise<void> => {
    for (const request of (await machine.outgoingRequests()) as Outgoing[]) {
      let res: { status: number; text: string } | undefined;
      if (request.type === RequestType.KeysUpload) res = await asBot("POST", "/keys/upload", request.body);
      else if (request.type === RequestType.KeysQuery) res = await asBot("POST", "/keys/query", request.body);
      else if (request.type === RequestType.KeysClaim) res = await asBot("POST", "/keys/claim", request.body);
      else if (request.type === RequestType.SignatureUpload) res = await asBot("POST", "/keys/signatures/upload", request.body);
      else if (request instanceof ToDeviceRequest) res = await asBot("PUT", `/sendToDevice/${encodeURIComponent(request.event_type)}/${encodeURIComponent(request.txn_id)}`, request.body);
      if (!res || request.id === undefined) continue;
      assert.equal(res.status, 200, `${RequestType[request.type]}: ${res.text}`);
      await machine.markRequestAsSent(request.id, request.type, res.text);
    }
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
    await processOutgoing();
    return toDevice.length;
  };

  before(async () => {
    if (suitesOnSynapse()) {
      mkdirSync(join(artifactsDir, "logs"), { recursive: true });
      synapse = await startSynapse({
        dir: tempDir("e2ee-bot-device-"),
        registrations: [registration],
        extra: { experimental_features: { msc3202_device_masquerading: true } },
        logFile: join(artifactsDir, "logs", "e2ee-bot-device.synapse.log"),
      });
      access = synapse;
    } else {
      const adminToken = `admin-${randomBytes(16).toString("hex")}`;
      hs = new TestHomeserver({ serverName: testServerName(), adminToken, registrations: [registration] });
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
  });

  it("the appservice's own user cannot /sync (Synapse: 500), so the device is a namespaced user's", async () => {
    const res = await fetch(`${access.url}/_matrix/client/v3/sync?timeout=0`, { headers: { authorization: `Bearer ${asToken}` } });
    assert.equal(res.status, 500);
    assert.equal(((await res.json()) as Json)["errcode"], "M_UNKNOWN");
  });

  it("gets its device by appservice login with a fixed device ID, and publishes its keys through the as_token", async () => {
    const register = await fetch(`${access.url}/_matrix/client/v3/register`, {
      method: "POST",
      headers: { authorization: `Bearer ${asToken}`, "content-type": "application/json" },
      body: JSON.stringify({ type: "m.login.application_service", username: "kuvertbot", inhibit_login: true }),
    });
    assert.equal(register.status, 200, await register.clone().text());
    const login = await fetch(`${access.url}/_matrix/client/v3/login`, {
      method: "POST",
      headers: { authorization: `Bearer ${asToken}`, "content-type": "application/json" },
      body: JSON.stringify({ type: "m.login.application_service", identifier: { type: "m.id.user", user: "kuvertbot" }, device_id: DEVICE }),
    });
    const session = (await login.json()) as Json;
    assert.equal(login.status, 200, JSON.stringify(session));
    assert.deepEqual([session["user_id"], session["device_id"]], [botId, DEVICE]);

    machine = await OlmMachine.initialize(new UserId(botId), new DeviceId(DEVICE));
    await processOutgoing();
    await syncOnce();
    const seen = await alice.client.getCrypto()!.getUserDeviceInfo([botId], true);
    const device = seen.get(botId)?.get(DEVICE);
    assert.equal(device?.getIdentityKey(), machine.identityKeys.curve25519.toBase64(), "alice sees the bot's device with the machine's identity key");
  });

  it("receives the room key from a clerk's client as a to-device message and decrypts the clerk's messages", async () => {
    const { room_id: roomId } = await alice.client.createRoom({
      invite: [botId],
      initial_state: [{ type: EventType.RoomEncryption, state_key: "", content: { algorithm: "m.megolm.v1.aes-sha2" } }],
    });
    assert.equal((await asBot("POST", `/join/${encodeURIComponent(roomId)}`, {})).status, 200);
    await alice.until("the bot has joined", () => alice.room(roomId)?.getMember(botId)?.membership === "join");
    await waitFor("alice to know the room is encrypted", () => alice.client.getCrypto()!.isEncryptionEnabledInRoom(roomId));

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
});
