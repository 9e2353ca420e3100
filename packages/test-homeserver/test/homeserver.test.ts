// Smoke test of the test homeserver: the rules Kuvert relies on, and matrix-js-sdk (as Element) against it.
import assert from "node:assert/strict";
import { type IncomingMessage, type Server, type ServerResponse, createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { ClientEvent, type MatrixClient, type MatrixEvent, RoomEvent, RoomMemberEvent, SyncState, createClient } from "matrix-js-sdk";
import { type Logger, logger as sdkLogger } from "matrix-js-sdk/lib/logger.js";
import { type AppserviceRegistration, type JsonObject, TestHomeserver } from "@kuvert/test-homeserver";

const quiet: Logger = { trace() {}, debug() {}, info() {}, warn() {}, error() {}, getChild: () => quiet };
// Parts of the sdk (rooms, MatrixRTC) log through its global loglevel logger.
(sdkLogger as unknown as { setLevel(level: string): void }).setLevel("silent");

// matrix-js-sdk arms an 80-110 s timer for each /sync request and never clears it
// (http-api/utils.js, timeoutSignal). Unref such long timers so that this process ends with its tests.
const realSetTimeout = globalThis.setTimeout;
globalThis.setTimeout = ((callback: (...args: unknown[]) => void, ms?: number, ...args: unknown[]) => {
  const timer = realSetTimeout(callback, ms, ...args);
  if ((ms ?? 0) >= 60_000) timer.unref();
  return timer;
}) as typeof setTimeout;

interface Response {
  status: number;
  json: JsonObject;
}

async function call(hs: TestHomeserver, method: string, path: string, token?: string, body?: unknown): Promise<Response> {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (token !== undefined) headers["authorization"] = `Bearer ${token}`;
  const res = await fetch(`${hs.url}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  return { status: res.status, json: (await res.json()) as JsonObject };
}

const enc = encodeURIComponent;

interface ReceivedTransaction {
  txnId: string;
  authorization: string | undefined;
  events: JsonObject[];
}

/** A tiny HTTP listener standing in for an appservice. */
class FakeAppservice {
  readonly transactions: ReceivedTransaction[] = [];
  readonly pings: JsonObject[] = [];
  failNextTransactions = 0;
  private readonly server: Server;

  constructor() {
    this.server = createServer((req: IncomingMessage, res: ServerResponse) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        const body = chunks.length ? (JSON.parse(Buffer.concat(chunks).toString("utf8")) as JsonObject) : {};
        const m = /^\/_matrix\/app\/v1\/transactions\/([^/]+)$/.exec(req.url ?? "");
        if (req.method === "PUT" && m) {
          this.transactions.push({ txnId: m[1] ?? "", authorization: req.headers.authorization, events: body["events"] as JsonObject[] });
          if (this.failNextTransactions > 0) {
            this.failNextTransactions--;
            res.writeHead(500, { "content-type": "application/json" }).end(JSON.stringify({ errcode: "M_UNKNOWN", error: "boom" }));
            return;
          }
          res.writeHead(200, { "content-type": "application/json" }).end("{}");
          return;
        }
        if (req.method === "POST" && req.url === "/_matrix/app/v1/ping") {
          this.pings.push(body);
          res.writeHead(200, { "content-type": "application/json" }).end("{}");
          return;
        }
        res.writeHead(404, { "content-type": "application/json" }).end(JSON.stringify({ errcode: "M_UNRECOGNIZED", error: "Unrecognized request" }));
      });
    });
  }

  async start(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  stop(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

function registration(url: string): AppserviceRegistration {
  return {
    id: "kuvert",
    url,
    as_token: "as-token-secret",
    hs_token: "hs-token-secret",
    sender_localpart: "kuvert",
    namespaces: {
      users: [
        { regex: "@_kuvert_.*:kuvert\\.test", exclusive: true },
        { regex: "@bridged-.*:kuvert\\.test", exclusive: true },
      ],
      aliases: [{ regex: "#_kuvert_.*:kuvert\\.test", exclusive: true }],
      rooms: [],
    },
    rate_limited: false,
  };
}

const AS = "as-token-secret";
const ADMIN = "admin-token-secret";

describe("test homeserver", () => {
  let hs: TestHomeserver;
  let appservice: FakeAppservice;
  let alice: { userId: string; accessToken: string };
  let bob: { userId: string; accessToken: string };

  before(async () => {
    appservice = new FakeAppservice();
    const url = await appservice.start();
    hs = new TestHomeserver({ registrations: [registration(url)], adminToken: ADMIN, asRetryBaseMs: 50 });
    await hs.start();
    alice = await hs.createUser("alice", "alice-password", { displayName: "Alice" });
    bob = await hs.createUser("bob", "bob-password");
  });

  after(async () => {
    await hs.stop();
    await appservice.stop();
  });

  describe("appservice identity", () => {
    it("registers users in its namespace only, and only once", async () => {
      const ok = await call(hs, "POST", "/_matrix/client/v3/register", AS, { type: "m.login.application_service", username: "_kuvert_clerk", inhibit_login: true });
      assert.equal(ok.status, 200);
      assert.equal(ok.json["user_id"], "@_kuvert_clerk:kuvert.test");
      const again = await call(hs, "POST", "/_matrix/client/v3/register", AS, { type: "m.login.application_service", username: "_kuvert_clerk" });
      assert.equal(again.status, 400);
      assert.equal(again.json["errcode"], "M_USER_IN_USE");
      const outside = await call(hs, "POST", "/_matrix/client/v3/register", AS, { type: "m.login.application_service", username: "someone" });
      assert.equal(outside.status, 400);
      assert.equal(outside.json["errcode"], "M_EXCLUSIVE");
    });

    it("keeps the exclusive namespace from everyone else", async () => {
      const plain = await call(hs, "POST", "/_matrix/client/v3/register", undefined, { username: "mallory", password: "x" });
      assert.equal(plain.status, 403, "registration is closed");
      const byAdmin = await call(hs, "PUT", `/_synapse/admin/v2/users/${enc("@bridged-eve:kuvert.test")}`, ADMIN, { password: "x" });
      assert.equal(byAdmin.status, 400);
      assert.equal(byAdmin.json["errcode"], "M_EXCLUSIVE");
      const alias = await call(hs, "POST", "/_matrix/client/v3/createRoom", alice.accessToken, { room_alias_name: "_kuvert_taken" });
      assert.equal(alias.status, 400);
      assert.equal(alias.json["errcode"], "M_EXCLUSIVE");
      const asAlias = await call(hs, "POST", "/_matrix/client/v3/createRoom", AS, { room_alias_name: "_kuvert_own" });
      assert.equal(asAlias.status, 200);
      assert.equal(asAlias.json["room_alias"], "#_kuvert_own:kuvert.test");
    });

    it("lets the appservice masquerade as its registered users only", async () => {
      const bot = await call(hs, "GET", "/_matrix/client/v3/account/whoami", AS);
      assert.equal(bot.json["user_id"], "@kuvert:kuvert.test");
      const clerk = await call(hs, "GET", `/_matrix/client/v3/account/whoami?user_id=${enc("@_kuvert_clerk:kuvert.test")}`, AS);
      assert.equal(clerk.status, 200);
      assert.equal(clerk.json["user_id"], "@_kuvert_clerk:kuvert.test");
      const unregistered = await call(hs, "GET", `/_matrix/client/v3/account/whoami?user_id=${enc("@_kuvert_ghost:kuvert.test")}`, AS);
      assert.equal(unregistered.status, 403);
      assert.match(String(unregistered.json["error"]), /has not registered this user/);
      const foreign = await call(hs, "GET", `/_matrix/client/v3/account/whoami?user_id=${enc(alice.userId)}`, AS);
      assert.equal(foreign.status, 403);
      assert.equal(foreign.json["errcode"], "M_FORBIDDEN");
      assert.match(String(foreign.json["error"]), /cannot masquerade/);
      const bad = await call(hs, "GET", "/_matrix/client/v3/account/whoami", "not-a-token");
      assert.equal(bad.status, 401);
      assert.equal(bad.json["errcode"], "M_UNKNOWN_TOKEN");
      const none = await call(hs, "GET", "/_matrix/client/v3/account/whoami");
      assert.equal(none.json["errcode"], "M_MISSING_TOKEN");
    });

    it("pings the appservice with its hs_token", async () => {
      const res = await call(hs, "POST", "/_matrix/client/v1/appservice/kuvert/ping", AS, { transaction_id: "ping-1" });
      assert.equal(res.status, 200);
      assert.equal(typeof res.json["duration_ms"], "number");
      assert.deepEqual(appservice.pings.at(-1), { transaction_id: "ping-1" });
      const wrongId = await call(hs, "POST", "/_matrix/client/v1/appservice/other/ping", AS, {});
      assert.equal(wrongId.status, 403);
      const user = await call(hs, "POST", "/_matrix/client/v1/appservice/kuvert/ping", alice.accessToken, {});
      assert.equal(user.status, 403);
    });
  });

  describe("rooms", () => {
    let roomId: string;

    before(async () => {
      const res = await call(hs, "POST", "/_matrix/client/v3/createRoom", alice.accessToken, {
        preset: "private_chat",
        name: "Org A",
        power_level_content_override: { events: { "org.kuvert.marker": 0 } },
      });
      assert.equal(res.status, 200);
      roomId = String(res.json["room_id"]);
    });

    it("refuses to join an invite-only room without an invite", async () => {
      const refused = await call(hs, "POST", `/_matrix/client/v3/join/${enc(roomId)}`, bob.accessToken, {});
      assert.equal(refused.status, 403);
      assert.equal(refused.json["error"], "You are not invited to this room.");
      const notMember = await call(hs, "PUT", `/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/t1`, bob.accessToken, { msgtype: "m.text", body: "hi" });
      assert.equal(notMember.status, 403);
      const invite = await call(hs, "POST", `/_matrix/client/v3/rooms/${enc(roomId)}/invite`, alice.accessToken, { user_id: bob.userId });
      assert.equal(invite.status, 200);
      const joined = await call(hs, "POST", `/_matrix/client/v3/rooms/${enc(roomId)}/join`, bob.accessToken, {});
      assert.equal(joined.status, 200);
      assert.equal(joined.json["room_id"], roomId);
    });

    it("applies power levels to state events, kicks and redactions", async () => {
      const name = await call(hs, "PUT", `/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.name/`, bob.accessToken, { name: "mine" });
      assert.equal(name.status, 403);
      assert.equal(name.json["errcode"], "M_FORBIDDEN");
      assert.match(String(name.json["error"]), /user_level \(0\) < send_level \(50\)/);
      const marker = await call(hs, "PUT", `/_matrix/client/v3/rooms/${enc(roomId)}/state/org.kuvert.marker/x`, bob.accessToken, { ok: true });
      assert.equal(marker.status, 200, "events map lowers the level for one type");
      const raise = await call(hs, "PUT", `/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.power_levels`, alice.accessToken, {
        users: { [alice.userId]: 100, [bob.userId]: 101 },
      });
      assert.equal(raise.status, 403, "no one can grant more than their own level");
      const kick = await call(hs, "POST", `/_matrix/client/v3/rooms/${enc(roomId)}/kick`, bob.accessToken, { user_id: alice.userId });
      assert.equal(kick.status, 403);
      const msg = await call(hs, "PUT", `/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/a1`, alice.accessToken, { msgtype: "m.text", body: "secret" });
      const foreign = await call(hs, "PUT", `/_matrix/client/v3/rooms/${enc(roomId)}/redact/${enc(String(msg.json["event_id"]))}/r1`, bob.accessToken, {});
      assert.equal(foreign.status, 403);
      const own = await call(hs, "PUT", `/_matrix/client/v3/rooms/${enc(roomId)}/redact/${enc(String(msg.json["event_id"]))}/r1`, alice.accessToken, { reason: "oops" });
      assert.equal(own.status, 200);
      const redacted = hs.timeline(roomId).find((e) => e.event_id === msg.json["event_id"]);
      assert.deepEqual(redacted?.content, {});
      const because = redacted?.unsigned?.["redacted_because"] as JsonObject | undefined;
      assert.deepEqual(because?.["content"], { reason: "oops" });
    });

    it("keeps kicked and banned users out", async () => {
      const kick = await call(hs, "POST", `/_matrix/client/v3/rooms/${enc(roomId)}/kick`, alice.accessToken, { user_id: bob.userId, reason: "bye" });
      assert.equal(kick.status, 200);
      const send = await call(hs, "PUT", `/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/k1`, bob.accessToken, { msgtype: "m.text", body: "still here?" });
      assert.equal(send.status, 403);
      await call(hs, "POST", `/_matrix/client/v3/rooms/${enc(roomId)}/ban`, alice.accessToken, { user_id: bob.userId });
      const invite = await call(hs, "POST", `/_matrix/client/v3/rooms/${enc(roomId)}/invite`, alice.accessToken, { user_id: bob.userId });
      assert.equal(invite.status, 403);
      assert.equal(invite.json["errcode"], "M_BAD_STATE");
    });

    it("returns the same event for a repeated transaction ID", async () => {
      const path = `/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/same-txn`;
      const first = await call(hs, "PUT", path, alice.accessToken, { msgtype: "m.text", body: "once" });
      const second = await call(hs, "PUT", path, alice.accessToken, { msgtype: "m.text", body: "once" });
      assert.equal(first.status, 200);
      assert.equal(second.json["event_id"], first.json["event_id"]);
      assert.equal(hs.timeline(roomId).filter((e) => e.content["body"] === "once").length, 1);
      const otherDevice = await call(hs, "POST", "/_matrix/client/v3/login", undefined, {
        type: "m.login.password",
        identifier: { type: "m.id.user", user: "alice" },
        password: "alice-password",
      });
      const third = await call(hs, "PUT", path, String(otherDevice.json["access_token"]), { msgtype: "m.text", body: "once" });
      assert.notEqual(third.json["event_id"], first.json["event_id"], "transaction IDs are scoped per device");
    });
  });

  describe("appservice transactions", () => {
    it("pushes interesting events and resends the same transaction after a failure", async () => {
      await hs.waitForAppserviceIdle("kuvert", 5000);
      const before = appservice.transactions.length;
      appservice.failNextTransactions = 1;
      const created = await call(hs, "POST", "/_matrix/client/v3/createRoom", AS, { preset: "private_chat", invite: [alice.userId] });
      const roomId = String(created.json["room_id"]);
      await hs.waitForAppserviceIdle("kuvert", 5000);
      const seen = appservice.transactions.slice(before);
      assert.ok(seen.length >= 2);
      const [failed, retried] = seen;
      assert.equal(retried?.txnId, failed?.txnId, "the failed transaction is resent with its txnId");
      assert.deepEqual(
        retried?.events.map((e) => e["event_id"]),
        failed?.events.map((e) => e["event_id"]),
      );
      assert.equal(failed?.authorization, "Bearer hs-token-secret");
      const ids = new Set(seen.flatMap((t) => t.events.map((e) => e["event_id"])));
      const timeline = hs.timeline(roomId);
      assert.ok(
        timeline.every((e) => ids.has(e.event_id)),
        "every event of the bot's room is pushed",
      );
      const create = seen[0]?.events.find((e) => e["type"] === "m.room.create");
      assert.equal(create?.["room_id"], roomId);
      assert.equal(create?.["state_key"], "");
      assert.equal(typeof (create?.["unsigned"] as JsonObject | undefined)?.["age"], "number");
      const txnIds = [...new Set(appservice.transactions.map((t) => Number(t.txnId)))];
      assert.deepEqual(
        txnIds,
        [...txnIds].sort((a, b) => a - b),
        "txnIds increase",
      );
      const invite = seen.flatMap((t) => t.events).find((e) => e["type"] === "m.room.member" && e["state_key"] === alice.userId);
      assert.equal((invite?.["content"] as JsonObject | undefined)?.["membership"], "invite");
    });

    it("does not push events of rooms the appservice has no interest in", async () => {
      await hs.waitForAppserviceIdle("kuvert", 5000);
      const before = appservice.transactions.length;
      const res = await call(hs, "POST", "/_matrix/client/v3/createRoom", bob.accessToken, { name: "private" });
      await hs.waitForAppserviceIdle("kuvert", 5000);
      const pushed = appservice.transactions
        .slice(before)
        .flatMap((t) => t.events)
        .filter((e) => e["room_id"] === res.json["room_id"]);
      assert.equal(pushed.length, 0);
    });
  });

  describe("media", () => {
    it("uploads and serves media to authenticated users only", async () => {
      const upload = await fetch(`${hs.url}/_matrix/media/v3/upload?filename=letter.pdf`, {
        method: "POST",
        headers: { authorization: `Bearer ${alice.accessToken}`, "content-type": "application/pdf" },
        body: Buffer.from("%PDF-1.4 test"),
      });
      assert.equal(upload.status, 200);
      const { content_uri: uri } = (await upload.json()) as { content_uri: string };
      assert.match(uri, /^mxc:\/\/kuvert\.test\/[A-Za-z0-9]+$/);
      const path = `/_matrix/client/v1/media/download/${uri.slice("mxc://".length)}`;
      const anonymous = await fetch(`${hs.url}${path}`);
      assert.equal(anonymous.status, 401);
      const download = await fetch(`${hs.url}${path}`, { headers: { authorization: `Bearer ${bob.accessToken}` } });
      assert.equal(download.status, 200);
      assert.equal(download.headers.get("content-type"), "application/pdf");
      assert.equal(download.headers.get("content-disposition"), "attachment; filename=letter.pdf");
      assert.equal(await download.text(), "%PDF-1.4 test");
      const legacy = await fetch(`${hs.url}/_matrix/media/v3/download/${uri.slice("mxc://".length)}`);
      assert.equal(legacy.status, 404, "unauthenticated media is frozen");
      const [server, mediaId] = uri.slice("mxc://".length).split("/");
      const notAdmin = await call(hs, "POST", `/_synapse/admin/v1/media/quarantine/${server}/${mediaId}`, alice.accessToken, {});
      assert.equal(notAdmin.status, 403);
      assert.equal(notAdmin.json["error"], "You are not a server admin");
      await call(hs, "POST", `/_synapse/admin/v1/media/quarantine/${server}/${mediaId}`, ADMIN, {});
      const quarantined = await fetch(`${hs.url}${path}`, { headers: { authorization: `Bearer ${bob.accessToken}` } });
      assert.equal(quarantined.status, 404);
      assert.equal(hs.mediaInfo(uri)?.quarantined, true);
    });
  });

  describe("accounts", () => {
    it("creates, modifies and deactivates users through the admin API", async () => {
      const path = `/_synapse/admin/v2/users/${enc("@dora:kuvert.test")}`;
      const created = await call(hs, "PUT", path, ADMIN, { password: "dora-pw", displayname: "Dora", threepids: [{ medium: "email", address: "Dora@Example.org" }] });
      assert.equal(created.status, 201);
      const modified = await call(hs, "PUT", path, ADMIN, { displayname: "Dora D." });
      assert.equal(modified.status, 200);
      assert.equal(modified.json["displayname"], "Dora D.");
      const byEmail = await call(hs, "POST", "/_matrix/client/v3/login", undefined, {
        type: "m.login.password",
        identifier: { type: "m.id.thirdparty", medium: "email", address: "dora@example.org" },
        password: "dora-pw",
      });
      assert.equal(byEmail.status, 200);
      const deactivated = await call(hs, "POST", `/_synapse/admin/v1/deactivate/${enc("@dora:kuvert.test")}`, ADMIN, {});
      assert.equal(deactivated.status, 200);
      const login = await call(hs, "POST", "/_matrix/client/v3/login", undefined, { type: "m.login.password", user: "dora", password: "dora-pw" });
      assert.equal(login.status, 403);
      assert.equal(login.json["errcode"], "M_USER_DEACTIVATED");
      const oldToken = await call(hs, "GET", "/_matrix/client/v3/account/whoami", String(byEmail.json["access_token"]));
      assert.equal(oldToken.status, 401);
    });

    it("answers username_available as Synapse does, for admins only", async () => {
      const available = (name: string, token = ADMIN) => call(hs, "GET", `/_synapse/admin/v1/username_available?username=${enc(name)}`, token);
      assert.deepEqual(await available("new-person"), { status: 200, json: { available: true } });
      for (const [name, errcode] of [
        ["ALICE", "M_INVALID_USERNAME"],
        ["alice", "M_USER_IN_USE"],
        ["_x", "M_INVALID_USERNAME"],
        ["123", "M_INVALID_USERNAME"],
        ["bridged-x", "M_EXCLUSIVE"],
      ] as const) {
        const res = await available(name);
        assert.deepEqual([res.status, res.json["errcode"]], [400, errcode], name);
      }
      const notAdmin = await available("new-person", alice.accessToken);
      assert.deepEqual([notAdmin.status, notAdmin.json["errcode"]], [403, "M_FORBIDDEN"]);
    });

    it("keeps external ids of accounts, one account per id, and resets passwords", async () => {
      const path = (id: string) => `/_synapse/admin/v2/users/${enc(id)}`;
      const mark = [{ auth_provider: "kuvert", external_id: "mark-1" }];
      const created = await call(hs, "PUT", path("@erna:kuvert.test"), ADMIN, { password: "erna-1", external_ids: mark });
      assert.equal(created.status, 201);
      assert.deepEqual((await call(hs, "GET", path("@erna:kuvert.test"), ADMIN)).json["external_ids"], mark);
      const clash = await call(hs, "PUT", path("@fritz:kuvert.test"), ADMIN, { password: "x", external_ids: mark });
      assert.equal(clash.status, 409);
      const reset = await call(hs, "POST", `/_synapse/admin/v1/reset_password/${enc("@erna:kuvert.test")}`, ADMIN, { new_password: "erna-2", logout_devices: true });
      assert.equal(reset.status, 200);
      const login = (password: string) => call(hs, "POST", "/_matrix/client/v3/login", undefined, { type: "m.login.password", identifier: { type: "m.id.user", user: "erna" }, password });
      assert.equal((await login("erna-1")).status, 403);
      assert.equal((await login("erna-2")).status, 200);
    });

    it("issues OpenID tokens that the federation userinfo endpoint resolves", async () => {
      const token = await call(hs, "POST", `/_matrix/client/v3/user/${enc(alice.userId)}/openid/request_token`, alice.accessToken, {});
      assert.equal(token.json["token_type"], "Bearer");
      assert.equal(token.json["matrix_server_name"], "kuvert.test");
      const info = await call(hs, "GET", `/_matrix/federation/v1/openid/userinfo?access_token=${enc(String(token.json["access_token"]))}`);
      assert.deepEqual(info.json, { sub: alice.userId });
      const unknown = await call(hs, "GET", "/_matrix/federation/v1/openid/userinfo?access_token=nope");
      assert.equal(unknown.status, 401);
      assert.equal(unknown.json["errcode"], "M_UNKNOWN_TOKEN");
    });

    it("logs a device out: its token stops working and the device is gone", async () => {
      const login = await call(hs, "POST", "/_matrix/client/v3/login", undefined, { type: "m.login.password", identifier: { type: "m.id.user", user: "alice" }, password: "alice-password" });
      assert.equal(login.status, 200);
      const token = String(login.json["access_token"]);
      assert.equal((await call(hs, "POST", "/_matrix/client/v3/logout", token, {})).status, 200);
      const after = await call(hs, "GET", "/_matrix/client/v3/account/whoami", token);
      assert.equal(after.status, 401);
      const devices = await call(hs, "GET", "/_matrix/client/v3/devices", alice.accessToken);
      assert.ok(!(devices.json["devices"] as JsonObject[]).some((d) => d["device_id"] === login.json["device_id"]));
    });

    it("offers single sign-on only when enabled: redirect, the provider's form, a single-use login token", async () => {
      assert.ok(!((await call(hs, "GET", "/_matrix/client/v3/login")).json["flows"] as JsonObject[]).some((f) => f["type"] === "m.login.sso"));
      const sso = new TestHomeserver({ sso: true });
      await sso.start();
      try {
        await sso.createUser("erin", "erin-pw");
        const flows = (await call(sso, "GET", "/_matrix/client/v3/login")).json["flows"] as JsonObject[];
        assert.deepEqual(
          flows.filter((f) => f["type"] === "m.login.sso" || f["type"] === "m.login.token").map((f) => f["type"]),
          ["m.login.sso", "m.login.token"],
        );
        const back = "http://client.example/app/?x=1";
        const redirect = await fetch(`${sso.url}/_matrix/client/v3/login/sso/redirect?redirectUrl=${enc(back)}`, { redirect: "manual" });
        assert.equal(redirect.status, 302);
        const page = await fetch(new URL(redirect.headers.get("location")!, sso.url));
        assert.match(await page.text(), /<form method="post" action="\/_test\/idp\/sign-in">/);
        const form = (password: string) => fetch(`${sso.url}/_test/idp/sign-in`, { method: "POST", redirect: "manual", headers: { "content-type": "application/x-www-form-urlencoded" }, body: new URLSearchParams({ redirectUrl: back, user: "erin", password }) });
        assert.equal((await form("wrong")).status, 403);
        const signedIn = await form("erin-pw");
        assert.equal(signedIn.status, 302);
        const target = new URL(signedIn.headers.get("location")!);
        assert.equal(`${target.origin}${target.pathname}`, "http://client.example/app/");
        assert.equal(target.searchParams.get("x"), "1");
        const loginToken = target.searchParams.get("loginToken")!;
        const login = await call(sso, "POST", "/_matrix/client/v3/login", undefined, { type: "m.login.token", token: loginToken });
        assert.equal(login.status, 200);
        assert.equal(login.json["user_id"], "@erin:kuvert.test");
        const again = await call(sso, "POST", "/_matrix/client/v3/login", undefined, { type: "m.login.token", token: loginToken });
        assert.equal(again.status, 403, "a login token works once");
      } finally {
        await sso.stop();
      }
    });
  });

  describe("matrix-js-sdk as a clerk", () => {
    let clerk: MatrixClient;

    after(() => clerk?.stopClient());

    it("logs in, syncs, sees an invite and a message, and uses the room", async () => {
      await hs.createUser("carol", "carol-password");
      const login = await createClient({ baseUrl: hs.url, logger: quiet }).loginRequest({
        type: "m.login.password",
        identifier: { type: "m.id.user", user: "carol" },
        password: "carol-password",
      });
      clerk = createClient({ baseUrl: hs.url, accessToken: login.access_token, userId: login.user_id, deviceId: login.device_id, logger: quiet });
      const prepared = new Promise<void>((resolve, reject) => {
        clerk.on(ClientEvent.Sync, (state: SyncState) => {
          if (state === SyncState.Prepared) resolve();
          if (state === SyncState.Error) reject(new Error("sync failed"));
        });
      });
      await clerk.startClient({ initialSyncLimit: 20 });
      await prepared;

      const invited = new Promise<string>((resolve) => {
        clerk.on(RoomMemberEvent.Membership, (_event, member) => {
          if (member.userId === login.user_id && member.membership === "invite") resolve(member.roomId);
        });
      });
      const created = await call(hs, "POST", "/_matrix/client/v3/createRoom", alice.accessToken, {
        name: "Org C",
        invite: [login.user_id],
        power_level_content_override: { events: { "org.kuvert.checked": 0 } },
      });
      const roomId = String(created.json["room_id"]);
      assert.equal(await invited, roomId);
      await clerk.joinRoom(roomId);

      const received = new Promise<MatrixEvent>((resolve) => {
        clerk.on(RoomEvent.Timeline, (event) => {
          if (event.getRoomId() === roomId && event.getContent()["body"] === "Welcome") resolve(event);
        });
      });
      await call(hs, "PUT", `/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/w1`, alice.accessToken, { msgtype: "m.notice", body: "Welcome" });
      assert.equal((await received).getSender(), alice.userId);

      const sent = await clerk.sendMessage(roomId, { msgtype: "m.text", body: "Hello from Element" } as never);
      assert.ok(hs.timeline(roomId).some((e) => e.event_id === sent.event_id));
      const custom = await clerk.sendEvent(roomId, "org.kuvert.test" as never, { ok: 1 } as never);
      assert.match(custom.event_id, /^\$/);

      const upload = await clerk.uploadContent(new Blob(["a file"], { type: "text/plain" }), { name: "note.txt" });
      assert.match(upload.content_uri, /^mxc:\/\/kuvert\.test\//);
      assert.equal(hs.mediaInfo(upload.content_uri)?.filename, "note.txt");

      await clerk.redactEvent(roomId, sent.event_id);
      assert.deepEqual(hs.timeline(roomId).find((e) => e.event_id === sent.event_id)?.content, {});

      const name = await clerk.getStateEvent(roomId, "m.room.name", "");
      assert.deepEqual(name, { name: "Org C" });
      await clerk.sendStateEvent(roomId, "org.kuvert.checked" as never, { by: "carol" } as never, "");
      await assert.rejects(clerk.sendStateEvent(roomId, "m.room.topic" as never, { topic: "nope" } as never, ""), /user_level \(0\)/);
    });
  });
});

describe("appservice ping failures", () => {
  async function ping(opts: { url: string | null; supportsAppservicePing?: boolean }): Promise<Response> {
    const reg = { ...registration("unused"), url: opts.url };
    const hs = new TestHomeserver({ supportsAppservicePing: opts.supportsAppservicePing, registrations: [reg] });
    await hs.start();
    try {
      return await call(hs, "POST", "/_matrix/client/v1/appservice/kuvert/ping", AS, {});
    } finally {
      await hs.stop();
    }
  }

  it("answers 404 M_UNRECOGNIZED on an older homeserver", async () => {
    const res = await ping({ url: "http://127.0.0.1:9", supportsAppservicePing: false });
    assert.equal(res.status, 404);
    assert.equal(res.json["errcode"], "M_UNRECOGNIZED");
  });

  it("reports an unreachable appservice and a missing URL", async () => {
    const unreachable = await ping({ url: "http://127.0.0.1:9" });
    assert.equal(unreachable.status, 502);
    assert.equal(unreachable.json["errcode"], "M_CONNECTION_FAILED");
    const noUrl = await ping({ url: null });
    assert.equal(noUrl.status, 400);
    assert.equal(noUrl.json["errcode"], "M_URL_NOT_SET");
  });
});

describe("fault injection", () => {
  it("holds, fails and counts requests", async () => {
    const hs = new TestHomeserver();
    await hs.start();
    try {
      const user = await hs.createUser("erin", "pw");
      hs.faults.failNext("GET", /\/account\/whoami$/, 1, 429, { errcode: "M_LIMIT_EXCEEDED", error: "Too Many Requests", retry_after_ms: 200 });
      const limited = await call(hs, "GET", "/_matrix/client/v3/account/whoami", user.accessToken);
      assert.equal(limited.status, 429);
      assert.equal(limited.json["retry_after_ms"], 200);
      const hold = hs.faults.hold("POST", /\/createRoom$/);
      const pending = call(hs, "POST", "/_matrix/client/v3/createRoom", user.accessToken, {});
      await hold.waitForHeld(1, 2000);
      assert.equal(hold.held(), 1);
      hold.release();
      assert.equal((await pending).status, 200);
      assert.equal((await call(hs, "GET", "/_matrix/client/v3/account/whoami", user.accessToken)).status, 200);
      assert.equal(hs.faults.requests("GET", /\/account\/whoami$/), 2);
      assert.equal(hs.faults.requests("*", /!/), 0);
    } finally {
      await hs.stop();
    }
  });
});
