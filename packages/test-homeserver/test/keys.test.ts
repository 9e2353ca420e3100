// The end-to-end encryption parts of the test homeserver over HTTP: key upload, claim and query,
// to-device messages and their deletion, device-list changes, cross-signing with its checks.
import assert from "node:assert/strict";
import { type KeyObject, generateKeyPairSync, sign } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { type JsonObject, TestHomeserver, canonicalJson } from "@kuvert/test-homeserver";

interface Response {
  status: number;
  json: JsonObject;
}

async function call(hs: TestHomeserver, method: string, path: string, token: string, body?: unknown): Promise<Response> {
  const res = await fetch(`${hs.url}/_matrix/client/v3${path}`, {
    method,
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as JsonObject };
}

interface User {
  userId: string;
  token: string;
  deviceId: string;
}

async function user(hs: TestHomeserver, localpart: string): Promise<User> {
  const { userId, accessToken } = await hs.createUser(localpart, `${localpart}-password`);
  const whoami = await call(hs, "GET", "/account/whoami", accessToken);
  return { userId, token: accessToken, deviceId: String(whoami.json["device_id"]) };
}

/** An ed25519 key pair; `id` is the public key in unpadded base64, as Matrix names it. */
function keyPair(): { id: string; privateKey: KeyObject } {
  const { publicKey, privateKey } = generateKeyPairSync("ed25519");
  const raw = Buffer.from(publicKey.export({ format: "jwk" }).x ?? "", "base64url");
  return { id: raw.toString("base64").replace(/=+$/, ""), privateKey };
}

/** Appendix §"Signing JSON": adds `signer`'s signature with key `ed25519:<keyName>`. */
function signed(object: JsonObject, signer: string, keyName: string, privateKey: KeyObject): JsonObject {
  const rest: JsonObject = { ...object };
  delete rest["signatures"];
  delete rest["unsigned"];
  const signature = sign(null, Buffer.from(canonicalJson(rest)), privateKey)
    .toString("base64")
    .replace(/=+$/, "");
  const signatures = { ...((object["signatures"] as JsonObject | undefined) ?? {}) };
  signatures[signer] = { ...((signatures[signer] as JsonObject | undefined) ?? {}), [`ed25519:${keyName}`]: signature };
  return { ...object, signatures };
}

const crossSigningKey = (userId: string, usage: string, id: string): JsonObject => ({ user_id: userId, usage: [usage], keys: { [`ed25519:${id}`]: id } });

/** An initial sync, then syncs from its token: what each answers. */
async function syncFrom(hs: TestHomeserver, u: User, since?: string): Promise<JsonObject> {
  return (await call(hs, "GET", `/sync?timeout=0${since === undefined ? "" : `&since=${since}`}`, u.token)).json;
}

describe("test homeserver: end-to-end encryption endpoints", () => {
  let hs: TestHomeserver;

  before(async () => {
    hs = new TestHomeserver({
      registrations: [{ id: "bot", url: null, as_token: "as-token", hs_token: "hs-token", sender_localpart: "bridge", namespaces: { users: [{ regex: "@bot:.*", exclusive: true }] } }],
    });
    await hs.start();
  });
  after(async () => hs.stop());

  it("stores one-time and fallback keys, hands out each one-time key once and then the fallback key, and counts them in /sync", async () => {
    const alice = await user(hs, "otk-alice");
    const bob = await user(hs, "otk-bob");
    const upload = await call(hs, "POST", "/keys/upload", alice.token, {
      one_time_keys: { "signed_curve25519:AAAA": { key: "k1" }, "signed_curve25519:AAAB": { key: "k2" } },
      fallback_keys: { "signed_curve25519:FFFF": { key: "fb", fallback: true } },
    });
    assert.deepEqual(upload, { status: 200, json: { one_time_key_counts: { signed_curve25519: 2 } } });
    const conflict = await call(hs, "POST", "/keys/upload", alice.token, { one_time_keys: { "signed_curve25519:AAAA": { key: "other" } } });
    assert.equal(conflict.status, 400);
    assert.match(String(conflict.json["error"]), /^One time key signed_curve25519:AAAA already exists/);
    const again = await call(hs, "POST", "/keys/upload", alice.token, { one_time_keys: { "signed_curve25519:AAAA": { key: "k1" } } });
    assert.deepEqual(again.json, { one_time_key_counts: { signed_curve25519: 2 } }, "the same key again is no new key");

    const claims: JsonObject[] = [];
    for (let i = 0; i < 4; i++) claims.push((await call(hs, "POST", "/keys/claim", bob.token, { one_time_keys: { [alice.userId]: { [alice.deviceId]: "signed_curve25519" } } })).json);
    const keyIds = claims.map((c) => Object.keys(((c["one_time_keys"] as JsonObject)[alice.userId] as JsonObject)[alice.deviceId] as JsonObject)[0]);
    assert.deepEqual(keyIds.slice(0, 2).sort(), ["signed_curve25519:AAAA", "signed_curve25519:AAAB"]);
    assert.deepEqual(keyIds.slice(2), ["signed_curve25519:FFFF", "signed_curve25519:FFFF"], "then the fallback key, which stays");
    const nothing = await call(hs, "POST", "/keys/claim", bob.token, { one_time_keys: { [bob.userId]: { [bob.deviceId]: "signed_curve25519" } } });
    assert.deepEqual(nothing.json, { one_time_keys: {}, failures: {} });

    const sync = await syncFrom(hs, alice);
    assert.deepEqual(sync["device_one_time_keys_count"], { signed_curve25519: 0 });
    assert.deepEqual(sync["device_unused_fallback_key_types"], [], "the fallback key was used");
    await call(hs, "POST", "/keys/upload", alice.token, { fallback_keys: { "signed_curve25519:GGGG": { key: "fb2", fallback: true } } });
    assert.deepEqual((await syncFrom(hs, alice))["device_unused_fallback_key_types"], ["signed_curve25519"]);
  });

  it("refuses key uploads without a device, as Synapse does for an appservice that names none", async () => {
    const res = await call(hs, "POST", "/keys/upload", "as-token", { one_time_keys: {} });
    assert.deepEqual(res, { status: 400, json: { errcode: "M_UNKNOWN", error: "To upload keys, you must pass device_id when authenticating" } });
  });

  it("lets an appservice act as a device of one of its users (appservice login with a device ID, then masquerading): keys, to-device messages and counts", async () => {
    const register = await call(hs, "POST", "/register", "as-token", { type: "m.login.application_service", username: "bot" });
    assert.equal(register.status, 200, JSON.stringify(register.json));
    const login = await fetch(`${hs.url}/_matrix/client/v3/login`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: "Bearer as-token" },
      body: JSON.stringify({ type: "m.login.application_service", identifier: { type: "m.id.user", user: "bot" }, device_id: "KUVERTBOT" }),
    });
    assert.equal(((await login.json()) as JsonObject)["device_id"], "KUVERTBOT");
    const bot = `@bot:${hs.serverName}`;
    const unknown = await call(hs, "POST", `/keys/upload?user_id=${encodeURIComponent(bot)}&org.matrix.msc3202.device_id=NOSUCHDEVICE`, "as-token", {});
    assert.equal(unknown.status, 400);
    assert.equal(unknown.json["errcode"], "M_EXCLUSIVE");
    const asBot = `?user_id=${encodeURIComponent(bot)}&org.matrix.msc3202.device_id=KUVERTBOT`;
    const upload = await call(hs, "POST", `/keys/upload${asBot}`, "as-token", { one_time_keys: { "signed_curve25519:B1": { key: "b1" } } });
    assert.deepEqual(upload.json, { one_time_key_counts: { signed_curve25519: 1 } });
    const first = (await call(hs, "GET", `/sync${asBot}&timeout=0`, "as-token")).json;
    assert.deepEqual(first["device_one_time_keys_count"], { signed_curve25519: 1 });
    const clerk = await user(hs, "bot-clerk");
    await call(hs, "PUT", "/sendToDevice/m.room.encrypted/t1", clerk.token, { messages: { [bot]: { KUVERTBOT: { ciphertext: "for the bot" } } } });
    const next = (await call(hs, "GET", `/sync${asBot}&timeout=0&since=${String(first["next_batch"])}`, "as-token")).json;
    assert.deepEqual(next["to_device"], { events: [{ sender: clerk.userId, type: "m.room.encrypted", content: { ciphertext: "for the bot" } }] });
    const withoutDevice = (await call(hs, "GET", `/sync?user_id=${encodeURIComponent(bot)}&timeout=0&since=${String(first["next_batch"])}`, "as-token")).json;
    assert.equal(withoutDevice["to_device"], undefined, "without the device parameter the appservice is no device");
    assert.deepEqual(withoutDevice["device_one_time_keys_count"], {});
    const sender = await call(hs, "GET", "/sync?timeout=0", "as-token");
    assert.deepEqual(sender, { status: 500, json: { errcode: "M_UNKNOWN", error: "Internal server error" } }, "Synapse does not sync the appservice's own user");
  });

  it("answers /keys/query with the devices that have keys, their display names and the signatures uploaded later", async () => {
    const carol = await user(hs, "query-carol");
    const other = await user(hs, "query-other");
    const deviceKeys = { user_id: carol.userId, device_id: carol.deviceId, algorithms: ["m.megolm.v1.aes-sha2"], keys: { [`ed25519:${carol.deviceId}`]: "pub" } };
    await call(hs, "PUT", `/devices/${carol.deviceId}`, carol.token, { display_name: "Carol's laptop" });
    await call(hs, "POST", "/keys/upload", carol.token, { device_keys: deviceKeys });
    const all = await call(hs, "POST", "/keys/query", other.token, { device_keys: { [carol.userId]: [] } });
    assert.deepEqual((all.json["device_keys"] as JsonObject)[carol.userId], { [carol.deviceId]: { ...deviceKeys, unsigned: { device_display_name: "Carol's laptop" } } });
    const unknown = await call(hs, "POST", "/keys/query", other.token, { device_keys: { [carol.userId]: ["NOSUCHDEVICE"], [other.userId]: [] } });
    assert.deepEqual(unknown.json["device_keys"], { [carol.userId]: {}, [other.userId]: {} });
  });

  it("delivers to-device messages in /sync until a later sync acknowledges them, once per transaction ID", async () => {
    const sender = await user(hs, "todevice-sender");
    const receiver = await user(hs, "todevice-receiver");
    const first = await syncFrom(hs, receiver);
    const body = { messages: { [receiver.userId]: { "*": { ping: 1 } } } };
    assert.equal((await call(hs, "PUT", "/sendToDevice/m.test/txn1", sender.token, body)).status, 200);
    assert.equal((await call(hs, "PUT", "/sendToDevice/m.test/txn1", sender.token, body)).status, 200);
    await call(hs, "PUT", "/sendToDevice/m.test/txn2", sender.token, { messages: { [receiver.userId]: { NOSUCHDEVICE: { ping: 2 } } } });
    const next = await syncFrom(hs, receiver, String(first["next_batch"]));
    assert.deepEqual(next["to_device"], { events: [{ sender: sender.userId, type: "m.test", content: { ping: 1 } }] });
    const repeated = await syncFrom(hs, receiver, String(first["next_batch"]));
    assert.deepEqual(repeated["to_device"], next["to_device"], "a sync repeated from the same token gets them again");
    const acknowledged = await syncFrom(hs, receiver, String(next["next_batch"]));
    assert.equal(acknowledged["to_device"], undefined);
    const fromStart = await syncFrom(hs, receiver);
    assert.equal(fromStart["to_device"], undefined, "acknowledged messages are deleted");
    const missing = await call(hs, "PUT", "/sendToDevice/m.test/txn3", sender.token, {});
    assert.deepEqual(missing, { status: 400, json: { errcode: "M_MISSING_PARAM", error: "Missing params: ['messages']" } });
  });

  it("reports device-list changes of users sharing a room, and users no longer sharing one, in /sync and /keys/changes", async () => {
    const dora = await user(hs, "lists-dora");
    const ed = await user(hs, "lists-ed");
    const edBefore = String((await syncFrom(hs, ed))["next_batch"]);
    const room = await call(hs, "POST", "/createRoom", dora.token, { invite: [ed.userId] });
    const roomId = String(room.json["room_id"]);
    assert.equal((await syncFrom(hs, ed, edBefore))["device_lists"], undefined, "an invitation shares no room yet");
    const start = await syncFrom(hs, dora);
    const token = String(start["next_batch"]);
    await call(hs, "POST", `/join/${encodeURIComponent(roomId)}`, ed.token, {});
    const joined = await syncFrom(hs, dora, token);
    assert.deepEqual(joined["device_lists"], { changed: [ed.userId] });
    const afterJoin = String(joined["next_batch"]);
    await call(hs, "POST", "/keys/upload", ed.token, { device_keys: { user_id: ed.userId, device_id: ed.deviceId, algorithms: [], keys: {} } });
    assert.deepEqual((await syncFrom(hs, dora, afterJoin))["device_lists"], { changed: [ed.userId] });
    assert.deepEqual((await call(hs, "GET", `/keys/changes?from=${afterJoin}&to=${afterJoin}`, dora.token)).json, { changed: [ed.userId], left: [] });
    const outsider = await user(hs, "lists-outsider");
    await call(hs, "POST", "/keys/upload", outsider.token, { device_keys: { user_id: outsider.userId, device_id: outsider.deviceId, algorithms: [], keys: {} } });
    const beforeLeave = String((await syncFrom(hs, dora, afterJoin))["next_batch"]);
    await call(hs, "POST", `/rooms/${encodeURIComponent(roomId)}/leave`, ed.token, {});
    assert.deepEqual((await syncFrom(hs, dora, beforeLeave))["device_lists"], { left: [ed.userId] }, "the outsider's keys are not Dora's business");
    assert.deepEqual((await call(hs, "GET", `/keys/changes?from=${beforeLeave}`, dora.token)).json, { changed: [], left: [ed.userId] });
  });

  it("tells those who share a room of a new device, not of a login to a device that exists", async () => {
    const ida = await user(hs, "login-ida");
    const jan = await user(hs, "login-jan");
    const room = await call(hs, "POST", "/createRoom", ida.token, { invite: [jan.userId] });
    await call(hs, "POST", `/join/${encodeURIComponent(String(room.json["room_id"]))}`, jan.token, {});
    const login = (deviceId: string) =>
      fetch(`${hs.url}/_matrix/client/v3/login`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ type: "m.login.password", identifier: { type: "m.id.user", user: jan.userId }, password: "login-jan-password", device_id: deviceId }),
      });
    const token = String((await syncFrom(hs, ida))["next_batch"]);
    assert.equal((await login("LAPTOP")).status, 200);
    const changed = await syncFrom(hs, ida, token);
    assert.deepEqual(changed["device_lists"], { changed: [jan.userId] });
    assert.equal((await login("LAPTOP")).status, 200);
    assert.equal((await syncFrom(hs, ida, String(changed["next_batch"])))["device_lists"], undefined);
  });

  it("deletes a device's keys when it logs out, and tells those who share a room", async () => {
    const gina = await user(hs, "logout-gina");
    const hank = await user(hs, "logout-hank");
    const room = await call(hs, "POST", "/createRoom", gina.token, { invite: [hank.userId] });
    await call(hs, "POST", `/join/${encodeURIComponent(String(room.json["room_id"]))}`, hank.token, {});
    await call(hs, "POST", "/keys/upload", hank.token, { device_keys: { user_id: hank.userId, device_id: hank.deviceId, algorithms: [], keys: {} } });
    const token = String((await syncFrom(hs, gina))["next_batch"]);
    assert.equal((await call(hs, "POST", "/logout", hank.token, {})).status, 200);
    assert.deepEqual((await syncFrom(hs, gina, token))["device_lists"], { changed: [hank.userId] });
    const query = await call(hs, "POST", "/keys/query", gina.token, { device_keys: { [hank.userId]: [] } });
    assert.deepEqual((query.json["device_keys"] as JsonObject)[hank.userId], {});
  });

  it("cross-signing: the master key signs the others, signatures are checked, and user-interactive auth as each Synapse asks", async () => {
    for (const synapse of ["1.67", "current"] as const) {
      const server = new TestHomeserver({ synapse });
      await server.start();
      try {
        const frank = await user(server, "frank");
        const master = keyPair();
        const selfSigning = keyPair();
        const userSigning = keyPair();
        const keys = {
          master_key: crossSigningKey(frank.userId, "master", master.id),
          self_signing_key: signed(crossSigningKey(frank.userId, "self_signing", selfSigning.id), frank.userId, master.id, master.privateKey),
          user_signing_key: signed(crossSigningKey(frank.userId, "user_signing", userSigning.id), frank.userId, master.id, master.privateKey),
        };
        const auth = { type: "m.login.password", identifier: { type: "m.id.user", user: frank.userId }, password: "frank-password" };
        const badlySigned = { ...keys, self_signing_key: signed(crossSigningKey(frank.userId, "self_signing", selfSigning.id), frank.userId, master.id, selfSigning.privateKey) };
        if (synapse === "1.67") {
          const challenge = await call(server, "POST", "/keys/device_signing/upload", frank.token, keys);
          assert.equal(challenge.status, 401);
          assert.deepEqual(challenge.json["flows"], [{ stages: ["m.login.password"] }]);
          const session = String(challenge.json["session"]);
          const wrong = await call(server, "POST", "/keys/device_signing/upload", frank.token, { ...keys, auth: { ...auth, password: "wrong", session } });
          assert.equal(wrong.status, 401);
          assert.equal(wrong.json["errcode"], "M_FORBIDDEN");
          const refused = await call(server, "POST", "/keys/device_signing/upload", frank.token, { ...badlySigned, auth: { ...auth, session } });
          assert.deepEqual(refused, { status: 400, json: { errcode: "M_INVALID_SIGNATURE", error: "Invalid signature on self-signing key" } });
          const again = await call(server, "POST", "/keys/device_signing/upload", frank.token, keys);
          assert.equal((await call(server, "POST", "/keys/device_signing/upload", frank.token, { ...keys, auth: { ...auth, session: again.json["session"] } })).status, 200);
        } else {
          const refused = await call(server, "POST", "/keys/device_signing/upload", frank.token, badlySigned);
          assert.deepEqual(refused, { status: 400, json: { errcode: "M_INVALID_SIGNATURE", error: "Invalid signature on self-signing key" } });
          assert.equal((await call(server, "POST", "/keys/device_signing/upload", frank.token, keys)).status, 200, "the first keys need no user-interactive auth (MSC3967)");
          assert.equal((await call(server, "POST", "/keys/device_signing/upload", frank.token, keys)).status, 200, "the same keys again change nothing");
          const replaced = await call(server, "POST", "/keys/device_signing/upload", frank.token, { master_key: crossSigningKey(frank.userId, "master", keyPair().id) });
          assert.equal(replaced.status, 401, "replacing them does");
        }

        // The device signed by the self-signing key; a signature by another key is refused.
        const device = keyPair();
        const deviceKeys = { user_id: frank.userId, device_id: frank.deviceId, algorithms: ["m.megolm.v1.aes-sha2"], keys: { [`ed25519:${frank.deviceId}`]: device.id } };
        await call(server, "POST", "/keys/upload", frank.token, { device_keys: signed(deviceKeys, frank.userId, frank.deviceId, device.privateKey) });
        const stored = (((await call(server, "POST", "/keys/query", frank.token, { device_keys: { [frank.userId]: [] } })).json["device_keys"] as JsonObject)[frank.userId] as JsonObject)[frank.deviceId] as JsonObject;
        const forged = await call(server, "POST", "/keys/signatures/upload", frank.token, { [frank.userId]: { [frank.deviceId]: signed(stored, frank.userId, selfSigning.id, userSigning.privateKey) } });
        assert.deepEqual(forged.json, { failures: { [frank.userId]: { [frank.deviceId]: { status: 400, errcode: "M_INVALID_SIGNATURE", message: "Invalid signature" } } } });
        const good = await call(server, "POST", "/keys/signatures/upload", frank.token, { [frank.userId]: { [frank.deviceId]: signed(stored, frank.userId, selfSigning.id, selfSigning.privateKey) } });
        assert.deepEqual(good.json, { failures: {} });
        const other = await user(server, "frank-viewer");
        const seen = await call(server, "POST", "/keys/query", other.token, { device_keys: { [frank.userId]: [] } });
        const seenDevice = ((seen.json["device_keys"] as JsonObject)[frank.userId] as JsonObject)[frank.deviceId] as JsonObject;
        assert.deepEqual(Object.keys((seenDevice["signatures"] as JsonObject)[frank.userId] as JsonObject).sort(), [`ed25519:${frank.deviceId}`, `ed25519:${selfSigning.id}`].sort());
        assert.deepEqual(Object.keys(seen.json["master_keys"] as JsonObject), [frank.userId]);
        assert.deepEqual(seen.json["user_signing_keys"], {}, "user-signing keys are shown to their owner only");
      } finally {
        await server.stop();
      }
    }
  });
});
