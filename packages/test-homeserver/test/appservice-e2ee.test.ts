// End-to-end encryption in appservice transactions, as Synapse sends it with
// `experimental_features.msc2409_to_device_messages_enabled` and `msc3202_transaction_extensions`:
// to-device messages for the appservice's users (MSC2409, now MSC4203), one-time-key counts, unused
// fallback key types and device-list changes (MSC3202), each behind its registration's opt-in.
import assert from "node:assert/strict";
import { type IncomingMessage, type ServerResponse, createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { type AppserviceRegistration, type HomeserverOptions, type JsonObject, TestHomeserver } from "@kuvert/test-homeserver";

interface Pushed {
  asId: string;
  txnId: string;
  /** The hs_token, from the Authorization header or (legacy routes) the query. */
  token: string | undefined;
  legacyRoute: boolean;
  body: JsonObject;
}

/** One listener for several appservices: each registration's URL ends in the appservice's ID. */
class Appservices {
  readonly pushed: Pushed[] = [];
  failNext = 0;
  url = "";
  private readonly server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const url = new URL(req.url ?? "/", "http://appservice");
      const m = /^\/([^/]+)(\/_matrix\/app\/v1)?\/transactions\/([^/]+)$/.exec(url.pathname);
      if (req.method !== "PUT" || !m) {
        res.writeHead(404, { "content-type": "application/json" }).end(JSON.stringify({ errcode: "M_UNRECOGNIZED", error: "Unrecognized request" }));
        return;
      }
      const token = req.headers.authorization?.replace(/^Bearer /, "") ?? url.searchParams.get("access_token") ?? undefined;
      const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as JsonObject;
      this.pushed.push({ asId: m[1] ?? "", txnId: m[3] ?? "", token, legacyRoute: m[2] === undefined, body });
      const failed = this.failNext > 0;
      if (failed) this.failNext--;
      res.writeHead(failed ? 500 : 200, { "content-type": "application/json" }).end(failed ? JSON.stringify({ errcode: "M_UNKNOWN", error: "boom" }) : "{}");
    });
  });

  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  stop(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  /** What one appservice was sent from index `from` of `pushed` on. */
  since(from: number, asId: string): Pushed[] {
    return this.pushed.slice(from).filter((p) => p.asId === asId);
  }
}

const enc = encodeURIComponent;
const FLAGS = { msc2409_to_device_messages_enabled: true, msc3202_transaction_extensions: true };
const OPT_IN = { "de.sorunome.msc2409.push_ephemeral": true, "org.matrix.msc3202": true } as const;
const COUNTS = "org.matrix.msc3202.device_one_time_key_counts";
const FALLBACK = "org.matrix.msc3202.device_unused_fallback_key_types";
const LISTS = "org.matrix.msc3202.device_lists";
const TO_DEVICE = "de.sorunome.msc2409.to_device";

/** Sender `@<id>-bot:kuvert.test`, namespace `@<id>_…`, as_token `as-<id>`. */
function registration(listener: Appservices, id: string, optIn: Partial<AppserviceRegistration>): AppserviceRegistration {
  return {
    id,
    url: `${listener.url}/${id}`,
    as_token: `as-${id}`,
    hs_token: `hs-${id}`,
    sender_localpart: `${id}-bot`,
    namespaces: { users: [{ regex: `@${id}_.*:kuvert\\.test`, exclusive: true }] },
    rate_limited: false,
    ...optIn,
  };
}

async function call(hs: TestHomeserver, method: string, path: string, token: string, body?: unknown): Promise<{ status: number; json: JsonObject }> {
  const res = await fetch(`${hs.url}/_matrix/client/v3${path}`, {
    method,
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as JsonObject };
}

/** CS API "Appservice Login" with a fixed device ID; answers the query that masquerades as that device (MSC3202). */
async function deviceOf(hs: TestHomeserver, asToken: string, userId: string, deviceId: string): Promise<string> {
  const login = await call(hs, "POST", "/login", asToken, { type: "m.login.application_service", identifier: { type: "m.id.user", user: userId }, device_id: deviceId });
  assert.equal(login.status, 200, JSON.stringify(login.json));
  return `?user_id=${enc(userId)}&org.matrix.msc3202.device_id=${deviceId}`;
}

const deviceKeys = (userId: string, deviceId: string): JsonObject => ({ user_id: userId, device_id: deviceId, algorithms: ["m.megolm.v1.aes-sha2"], keys: { [`ed25519:${deviceId}`]: `pub-${deviceId}` } });

describe("test homeserver: end-to-end encryption in appservice transactions", () => {
  const listener = new Appservices();
  const servers: TestHomeserver[] = [];
  const start = async (opts: HomeserverOptions): Promise<TestHomeserver> => {
    const hs = new TestHomeserver({ asRetryBaseMs: 50, ...opts });
    servers.push(hs);
    await hs.start();
    return hs;
  };

  before(() => listener.start());
  after(async () => {
    for (const hs of servers) await hs.stop();
    await listener.stop();
  });

  it("pushes the to-device messages of the appservice's own device once, with its key counts, as Synapse 1.67 sends them", async () => {
    const hs = await start({ synapse: "1.67", experimentalFeatures: FLAGS, registrations: [registration(listener, "own", OPT_IN)] });
    const sender = "@own-bot:kuvert.test";
    const asSender = await deviceOf(hs, "as-own", sender, "KUVERT");
    assert.equal((await call(hs, "POST", `/keys/upload${asSender}`, "as-own", { one_time_keys: { "signed_curve25519:AAAA": { key: "k1" } } })).status, 200);
    const clerk = await hs.createUser("clerk", "clerk-password");
    await hs.waitForAppserviceIdle("own");

    let from = listener.pushed.length;
    await call(hs, "PUT", "/sendToDevice/m.test/t1", clerk.accessToken, { messages: { [sender]: { KUVERT: { hello: 1 } } } });
    await hs.waitForAppserviceIdle("own");
    const [first, ...more] = listener.since(from, "own");
    // As a Synapse 1.67 with these flags and registration keys sent it, field for field.
    assert.deepEqual(first?.body, {
      "de.sorunome.msc2409.ephemeral": [],
      "de.sorunome.msc2409.to_device": [{ content: { hello: 1 }, sender: clerk.userId, to_device_id: "KUVERT", to_user_id: sender, type: "m.test" }],
      events: [],
      "org.matrix.msc3202.device_one_time_key_counts": { [sender]: { KUVERT: { signed_curve25519: 1 } } },
      "org.matrix.msc3202.device_unused_fallback_key_types": { [sender]: { KUVERT: [] } },
    });
    assert.deepEqual([first?.legacyRoute, first?.token, more.length], [true, "hs-own", 0]);

    from = listener.pushed.length;
    const claimed = await call(hs, "POST", "/keys/claim", clerk.accessToken, { one_time_keys: { [sender]: { KUVERT: "signed_curve25519" } } });
    assert.deepEqual(claimed.json["one_time_keys"], { [sender]: { KUVERT: { "signed_curve25519:AAAA": { key: "k1" } } } });
    await call(hs, "PUT", "/sendToDevice/m.test/t2", clerk.accessToken, { messages: { [sender]: { "*": { hello: 2 } } } });
    await hs.waitForAppserviceIdle("own");
    const [second] = listener.since(from, "own");
    assert.deepEqual(second?.body[TO_DEVICE], [{ to_user_id: sender, to_device_id: "KUVERT", sender: clerk.userId, type: "m.test", content: { hello: 2 } }], "only the new message: each is pushed once");
    assert.deepEqual(second?.body[COUNTS], { [sender]: { KUVERT: {} } }, "the claimed key is gone; an algorithm without keys is not named");

    from = listener.pushed.length;
    const outsider = await hs.createUser("outsider", "outsider-password");
    await call(hs, "PUT", "/sendToDevice/m.test/t3", clerk.accessToken, { messages: { [outsider.userId]: { "*": { hello: 3 } } } });
    await hs.waitForAppserviceIdle("own");
    assert.deepEqual(listener.since(from, "own"), [], "messages for users outside the appservice are not its business");

    const room = await call(hs, "POST", "/createRoom", "as-own", {});
    await hs.waitForAppserviceIdle("own");
    const withEvents = listener.since(from, "own");
    assert.ok(withEvents.length > 0 && withEvents.every((p) => JSON.stringify(p.body[COUNTS]) === JSON.stringify({ [sender]: { KUVERT: {} } })), "every transaction carries the counts, changed or not");
    assert.ok(withEvents.some((p) => (p.body["events"] as JsonObject[]).some((ev) => ev["room_id"] === room.json["room_id"])));
  });

  it("needs the homeserver's flag and the registration's opt-in for each field", async () => {
    const hs = await start({
      experimentalFeatures: FLAGS,
      registrations: [registration(listener, "ephemeral", { "de.sorunome.msc2409.push_ephemeral": true }), registration(listener, "extensions", { "org.matrix.msc3202": true }), registration(listener, "neither", {})],
    });
    const off = await start({ registrations: [registration(listener, "flagsoff", OPT_IN)] });
    const clerk = await hs.createUser("clerk", "clerk-password");
    const offClerk = await off.createUser("clerk", "clerk-password");
    const from = listener.pushed.length;
    for (const [server, id, token] of [
      [hs, "ephemeral", clerk.accessToken],
      [hs, "extensions", clerk.accessToken],
      [hs, "neither", clerk.accessToken],
      [off, "flagsoff", offClerk.accessToken],
    ] as const) {
      const sender = `@${id}-bot:kuvert.test`;
      const asSender = await deviceOf(server, `as-${id}`, sender, "KUVERT");
      await server.waitForAppserviceIdle(id);
      await call(server, "POST", `/keys/upload${asSender}`, `as-${id}`, { device_keys: deviceKeys(sender, "KUVERT"), one_time_keys: { "signed_curve25519:K1": { key: "k1" } } });
      await call(server, "PUT", `/sendToDevice/m.test/${id}`, token, { messages: { [sender]: { KUVERT: { hello: id } } } });
      await server.waitForAppserviceIdle(id);
    }
    const ephemeral = listener.since(from, "ephemeral");
    assert.deepEqual(
      ephemeral.map((p) => p.body),
      [{ events: [], "de.sorunome.msc2409.ephemeral": [], [TO_DEVICE]: [{ to_user_id: "@ephemeral-bot:kuvert.test", to_device_id: "KUVERT", sender: clerk.userId, type: "m.test", content: { hello: "ephemeral" } }] }],
      "to-device messages, no MSC3202 fields",
    );
    const extensions = listener.since(from, "extensions");
    assert.deepEqual(
      extensions.map((p) => p.body),
      [
        {
          events: [],
          [COUNTS]: { "@extensions-bot:kuvert.test": { KUVERT: {} } },
          "org.matrix.msc3202.device_one_time_keys_count": { "@extensions-bot:kuvert.test": { KUVERT: {} } },
          [FALLBACK]: { "@extensions-bot:kuvert.test": { KUVERT: [] } },
          [LISTS]: { changed: ["@extensions-bot:kuvert.test"], left: [] },
        },
        {
          events: [],
          [COUNTS]: { "@extensions-bot:kuvert.test": { KUVERT: { signed_curve25519: 1 } } },
          "org.matrix.msc3202.device_one_time_keys_count": { "@extensions-bot:kuvert.test": { KUVERT: { signed_curve25519: 1 } } },
          [FALLBACK]: { "@extensions-bot:kuvert.test": { KUVERT: [] } },
          [LISTS]: { changed: ["@extensions-bot:kuvert.test"], left: [] },
        },
      ],
      "its own device list changed by the login, then by the key upload, counted with that upload's keys; no to-device messages without ephemeral events",
    );
    assert.deepEqual(listener.since(from, "neither"), []);
    assert.deepEqual(listener.since(from, "flagsoff"), [], "without the flags, neither is pushed");
    await call(off, "POST", "/createRoom", "as-flagsoff", {});
    await off.waitForAppserviceIdle("flagsoff");
    const [created] = listener.since(from, "flagsoff");
    assert.deepEqual(Object.keys(created?.body ?? {}).sort(), ["de.sorunome.msc2409.ephemeral", TO_DEVICE, "events"].sort(), "the registration's keys alone: an empty list of to-device messages, no MSC3202 fields");
    assert.deepEqual(created?.body[TO_DEVICE], []);
  });

  it("tells the appservice whose device lists changed among those sharing a room with its users, and never fills `left`", async () => {
    const hs = await start({ experimentalFeatures: FLAGS, registrations: [registration(listener, "lists", { receive_ephemeral: true, "org.matrix.msc3202": true })] });
    const clerk = await hs.createUser("clerk", "clerk-password");
    const clerkDevice = String((await call(hs, "GET", "/account/whoami", clerk.accessToken)).json["device_id"]);
    const outsider = await hs.createUser("outsider", "outsider-password");
    const outsiderDevice = String((await call(hs, "GET", "/account/whoami", outsider.accessToken)).json["device_id"]);
    const room = String((await call(hs, "POST", "/createRoom", "as-lists", { invite: [clerk.userId] })).json["room_id"]);
    await call(hs, "POST", `/join/${enc(room)}`, clerk.accessToken, {});
    await hs.waitForAppserviceIdle("lists");

    let from = listener.pushed.length;
    await call(hs, "POST", "/keys/upload", clerk.accessToken, { device_keys: deviceKeys(clerk.userId, clerkDevice) });
    await call(hs, "POST", "/keys/upload", outsider.accessToken, { device_keys: deviceKeys(outsider.userId, outsiderDevice) });
    await hs.waitForAppserviceIdle("lists");
    const changed = listener.since(from, "lists");
    assert.deepEqual(
      changed.map((p) => p.body[LISTS]),
      [{ changed: [clerk.userId], left: [] }],
      "the clerk shares a room with the sender; the outsider does not",
    );
    assert.deepEqual(changed[0]?.body["ephemeral"], [], "`receive_ephemeral` (current Synapse): ephemeral events under `ephemeral`");
    assert.deepEqual(changed[0]?.body[TO_DEVICE], []);
    assert.equal(changed[0]?.body[COUNTS], undefined, "the sender has no device: no counts");

    await call(hs, "POST", `/rooms/${enc(room)}/leave`, clerk.accessToken, {});
    await hs.waitForAppserviceIdle("lists");
    from = listener.pushed.length;
    await call(hs, "POST", "/keys/upload", clerk.accessToken, { device_keys: { ...deviceKeys(clerk.userId, clerkDevice), algorithms: [] } });
    await hs.waitForAppserviceIdle("lists");
    assert.deepEqual(listener.since(from, "lists"), [], "no longer sharing a room: neither `changed` nor `left`");
  });

  it("pushes a namespaced user's to-device messages and leaves them for that device's /sync, as Synapse does (synapse#11423)", async () => {
    const hs = await start({ experimentalFeatures: FLAGS, registrations: [registration(listener, "ns", OPT_IN)] });
    const user = "@ns_bot:kuvert.test";
    assert.equal((await call(hs, "POST", "/register", "as-ns", { type: "m.login.application_service", username: "ns_bot", inhibit_login: true })).status, 200);
    const asUser = await deviceOf(hs, "as-ns", user, "NSDEVICE");
    const clerk = await hs.createUser("clerk", "clerk-password");
    const initial = await call(hs, "GET", `/sync${asUser}&timeout=0`, "as-ns");
    await hs.waitForAppserviceIdle("ns");
    const from = listener.pushed.length;
    await call(hs, "PUT", "/sendToDevice/m.room.encrypted/t1", clerk.accessToken, { messages: { [user]: { NSDEVICE: { ciphertext: "x" } } } });
    await hs.waitForAppserviceIdle("ns");
    const [pushed] = listener.since(from, "ns");
    assert.deepEqual(pushed?.body[TO_DEVICE], [{ to_user_id: user, to_device_id: "NSDEVICE", sender: clerk.userId, type: "m.room.encrypted", content: { ciphertext: "x" } }]);
    assert.deepEqual(pushed?.body[COUNTS], { [user]: { NSDEVICE: {} } }, "the recipient's devices; the sender has none");
    const synced = await call(hs, "GET", `/sync${asUser}&timeout=0&since=${String(initial.json["next_batch"])}`, "as-ns");
    assert.deepEqual(synced.json["to_device"], { events: [{ sender: clerk.userId, type: "m.room.encrypted", content: { ciphertext: "x" } }] });
  });

  it("resends a failed transaction with its events only: its to-device messages and key counts are lost, as with Synapse's recoverer", async () => {
    const hs = await start({ experimentalFeatures: FLAGS, registrations: [registration(listener, "retry", OPT_IN)] });
    const sender = "@retry-bot:kuvert.test";
    await deviceOf(hs, "as-retry", sender, "KUVERT");
    const clerk = await hs.createUser("clerk", "clerk-password");
    await hs.waitForAppserviceIdle("retry");
    const from = listener.pushed.length;
    listener.failNext = 1;
    await call(hs, "PUT", "/sendToDevice/m.test/t1", clerk.accessToken, { messages: { [sender]: { KUVERT: { hello: 1 } } } });
    await hs.waitForAppserviceIdle("retry");
    const [failed, retried, ...more] = listener.since(from, "retry");
    assert.equal(retried?.txnId, failed?.txnId);
    assert.deepEqual((failed?.body[TO_DEVICE] as JsonObject[] | undefined)?.length, 1);
    assert.deepEqual(failed?.body[COUNTS], { [sender]: { KUVERT: {} } });
    assert.deepEqual(retried?.body, { events: [], "de.sorunome.msc2409.ephemeral": [], [TO_DEVICE]: [] });
    assert.equal(more.length, 0);
  });
});
