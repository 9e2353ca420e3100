// The call link for members (Element X has no Jitsi widgets) and OpenID tokens bound to their
// purpose. `!video` answers a browser link; a clerk signs in on it in Chromium with their Matrix
// password and lands in the conference with a member join token; a member of another
// organisation is refused with a page that says why. A token Prosody presented to /verify never
// opens a console session, and console and call link tokens work once. A small HTTP server stands
// in for the Jitsi server (its external_api.js records what the page asked for).
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { decodeJwt, jwtVerify } from "jose";
import type { MatrixEvent } from "matrix-js-sdk";
import { chromium, type Browser, type Page } from "playwright-core";
import { chromiumOptions, ensureConsoleBuilt, openIdToken, signIn, type Account } from "../support/console.ts";
import { startStack, type Stack } from "../support/harness.ts";
import type { TestUser } from "../support/matrix.ts";

const SECRET = "member-link-secret-0123456789abcdef";
const APP_ID = "kuvert-member-test";

const fakeExternalApi = `
window.__jitsi = [];
window.JitsiMeetExternalAPI = function (domain, options) {
  const { parentNode, ...rest } = options;
  window.__jitsi.push({ domain, options: rest });
  this.addListener = function () {};
  this.dispose = function () {};
};
`;

function repliesTo(eventId: string) {
  return (e: MatrixEvent) => (e.getContent()["m.relates_to"] as { "m.in_reply_to"?: { event_id?: string } } | undefined)?.["m.in_reply_to"]?.event_id === eventId;
}

describe("the call link for members, and OpenID tokens bound to their purpose", () => {
  let stack: Stack;
  let jitsi: Server;
  let jitsiHost: string;
  let browser: Browser;
  let clerk: TestUser;
  let stranger: TestUser;
  let roomId: string;
  let linkPath: string;
  let callId: string;
  let admin: Account;

  const accountOf = (user: TestUser): Account => ({ userId: user.userId, localpart: user.userId.slice(1).split(":")[0]!, password: user.password });
  const post = (path: string, body: unknown) =>
    fetch(`${stack.publicUrl}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) }).then(async (res) => ({
      status: res.status,
      body: (await res.json()) as Record<string, unknown>,
    }));
  const auditRows = async (action: string) => (await stack.kuvert!.db.query<{ actor: string; object: string; outcome: string; details: Record<string, unknown> }>("SELECT actor, object, outcome, details FROM audit_log WHERE action = $1 ORDER BY seq", [action])).rows;
  const signInOnLink = async (user: TestUser): Promise<Page> => {
    const page = await browser.newPage({ locale: "de-DE" });
    await page.goto(`${stack.publicUrl}${linkPath}`);
    await page.getByRole("heading", { name: "Videoberatung: als Mitglied beitreten" }).waitFor();
    await page.locator("#user").fill(user.userId);
    await page.locator("#password").fill(user.password);
    await page.getByRole("button", { name: "Anmelden und beitreten" }).click();
    return page;
  };

  before(async () => {
    jitsi = createServer((req, res) => {
      if (req.url === "/external_api.js") res.writeHead(200, { "content-type": "text/javascript" }).end(fakeExternalApi);
      else res.writeHead(404).end();
    });
    await new Promise<void>((resolve) => jitsi.listen(0, "127.0.0.1", resolve));
    jitsiHost = `127.0.0.1:${(jitsi.address() as AddressInfo).port}`;
    ensureConsoleBuilt();
    stack = await startStack({
      name: "calls-member-link",
      configure: (raw) => {
        raw.calls = { jitsiDomain: jitsiHost, jitsiUrl: `http://${jitsiHost}`, appSecret: SECRET, appId: APP_ID, callMinutes: 60 };
      },
    });
    admin = { userId: stack.staff.userId, localpart: stack.staff.userId.slice(1).split(":")[0]!, password: stack.staff.password };
    clerk = await stack.user("clerk");
    stranger = await stack.user("stranger");
    await clerk.start();
    const created = await stack.api("POST", "/api/v1/organisations", { id: "musterstadt", name: "Gemeinde Musterstadt", clerks: [{ matrixId: clerk.userId }] });
    assert.equal(created.status, 201);
    roomId = await stack.roomOf("musterstadt");
    await clerk.waitForInvite(roomId);
    await clerk.join(roomId);
    // The stranger is a clerk too, of another organisation: a real account, not a member of this room.
    assert.equal((await stack.api("POST", "/api/v1/organisations", { id: "schule-b", name: "Schule B", clerks: [{ matrixId: stranger.userId }] })).status, 201);
    browser = await chromium.launch(chromiumOptions);
  });
  after(async () => {
    await browser?.close();
    await stack?.stop();
    await new Promise((resolve) => jitsi?.close(resolve));
  });

  it("never opens a console session with a token shown to /verify; Prosody may show it again", async () => {
    const openid = await openIdToken(stack.access, admin);
    for (let i = 0; i < 2; i++) {
      const checked = await post("/verify/user", { token: openid.access_token, matrix_server_name: openid.matrix_server_name });
      assert.equal(checked.status, 200);
      assert.deepEqual(checked.body.results, { user: true }, "Prosody re-checks with the same token");
    }
    const session = await signIn(stack, openid);
    assert.equal(session.status, 401);
    assert.equal((session.body as { errcode: string }).errcode, "KUVERT_OPENID_TOKEN_WRONG_PURPOSE");
    assert.match((session.body as { error: string }).error, /video consultation/);
    assert.equal(session.cookie, undefined);
    const failed = (await auditRows("console.sign-in")).filter((r) => r.outcome === "failed");
    assert.ok(
      failed.some((r) => r.details.errcode === "KUVERT_OPENID_TOKEN_WRONG_PURPOSE"),
      "the refused sign-in is audited",
    );
  });

  it("signs in once with a console token: the replay is refused, and the token does not open /verify either", async () => {
    const openid = await openIdToken(stack.access, admin);
    const first = await signIn(stack, openid);
    assert.equal(first.status, 201, JSON.stringify(first.body));
    const replay = await signIn(stack, openid);
    assert.equal(replay.status, 401);
    assert.equal((replay.body as { errcode: string }).errcode, "KUVERT_OPENID_TOKEN_USED");
    assert.equal(replay.cookie, undefined);
    const checked = await post("/verify/user", { token: openid.access_token });
    assert.deepEqual(checked.body.results, { user: false });
    assert.equal(checked.body.errcode, "KUVERT_OPENID_TOKEN_WRONG_PURPOSE");
    // Only keyed hashes are kept, each with its purpose and an end.
    const rows = (await stack.kuvert!.db.query<{ token_hash: string; purpose: string; expires_at: Date }>("SELECT token_hash, purpose, expires_at FROM openid_tokens_seen")).rows;
    assert.ok(rows.length >= 2);
    assert.ok(rows.every((r) => !r.token_hash.includes(openid.access_token) && r.expires_at > new Date()));
    assert.deepEqual([...new Set(rows.map((r) => r.purpose))].sort(), ["console", "verify"]);
  });

  it("answers !video with a browser link for members (Element X has no Jitsi widgets)", async () => {
    const id = await clerk.say(roomId, "!video");
    const reply = await clerk.waitForEvent(roomId, "the reply to !video", repliesTo(id));
    const body = String(reply.getContent().body);
    assert.match(body, /Videoberatung ist gestartet/);
    assert.match(body, /In Element X oder im Browser: /);
    const url = new URL(/(https?:\/\/\S+\/console\/join\.html\?call=[0-9a-f-]{36})/.exec(body)![1]!);
    assert.equal(url.origin, new URL(stack.config.publicApi.baseUrl).origin);
    linkPath = `${url.pathname}${url.search}`;
    callId = url.searchParams.get("call")!;
    const running = await stack.api<{ id: string }>("GET", "/api/v1/organisations/musterstadt/call");
    assert.equal(running.body.id, callId);
  });

  it("lets a clerk in: sign in on the link, membership checked, the conference opened with a member join token", async () => {
    const page = await signInOnLink(clerk);
    await page.waitForURL(/\/call\/\?lang=(de|en)#member$/, { timeout: 30_000 });
    await page.waitForSelector("body[data-state=joining]", { timeout: 15_000 });
    const joined = (await page.evaluate("window.__jitsi")) as { domain: string; options: { roomName: string; jwt: string; userInfo: { displayName: string } } }[];
    assert.equal(joined.length, 1);
    assert.equal(joined[0]!.domain, jitsiHost);
    const call = await stack.api<{ conferenceId: string }>("GET", "/api/v1/organisations/musterstadt/call");
    assert.equal(joined[0]!.options.roomName, call.body.conferenceId.toLowerCase());
    // Signed with the secret Jitsi shares, for its app id, for this conference only, and short-lived.
    const { payload } = await jwtVerify(joined[0]!.options.jwt, new TextEncoder().encode(SECRET), { issuer: APP_ID, audience: APP_ID, subject: jitsiHost });
    assert.equal(payload.room, call.body.conferenceId.toLowerCase());
    assert.deepEqual((payload.context as { user: { id: string } }).user.id, clerk.userId);
    assert.equal(payload.moderator, false, "clerks (level 0) are no moderators");
    assert.ok(payload.exp! - payload.nbf! <= 300);
    assert.equal(await page.evaluate(() => sessionStorage.getItem("kuvert.memberJoin")), null, "the join details are taken once");
    assert.ok((await auditRows("call.member_joined")).some((r) => r.actor === clerk.userId && r.object === callId));
    // The Matrix device used for the OpenID token is logged out again.
    const { devices } = await clerk.client.getDevices();
    assert.ok(!devices.some((d) => d.display_name === "Kuvert-Videoberatung"), JSON.stringify(devices));
    await page.close();
  });

  it("refuses a non-member with a page that says why, and audits it", async () => {
    const page = await signInOnLink(stranger);
    await page.getByRole("heading", { name: "Kein Zutritt: Sie sind nicht Mitglied dieses Raums" }).waitFor({ timeout: 30_000 });
    const text = await page.getByRole("alert").innerText();
    assert.match(text, new RegExp(stranger.userId.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")));
    assert.match(text, /Gastlink/);
    assert.ok(!page.url().includes("/call/"), "a non-member never reaches the call page");
    const refused = (await auditRows("call.member_join")).filter((r) => r.outcome === "refused");
    assert.ok(refused.some((r) => r.actor === stranger.userId && r.object === callId && r.details.errcode === "KUVERT_NOT_ROOM_MEMBER"));
    await page.close();
  });

  it("takes a call link token once, never a /verify token, and nothing for an ended call", async () => {
    const openid = await openIdToken(stack.access, accountOf(clerk));
    const first = await post("/api/v1/member-link/session", { callId, ...openid });
    assert.equal(first.status, 200, JSON.stringify(first.body));
    assert.equal(decodeJwt(String(first.body.jwt)).aud, APP_ID);
    const replay = await post("/api/v1/member-link/session", { callId, ...openid });
    assert.equal(replay.status, 401);
    assert.equal(replay.body.errcode, "KUVERT_OPENID_TOKEN_USED");

    const shown = await openIdToken(stack.access, accountOf(clerk));
    assert.equal((await post("/verify/user_in_room", { token: shown.access_token, room_id: roomId })).body.user_id, clerk.userId);
    const elsewhere = await post("/api/v1/member-link/session", { callId, ...shown });
    assert.equal(elsewhere.status, 401);
    assert.equal(elsewhere.body.errcode, "KUVERT_OPENID_TOKEN_WRONG_PURPOSE");

    assert.equal((await stack.api("DELETE", "/api/v1/organisations/musterstadt/call")).status, 200);
    const ended = await post("/api/v1/member-link/session", { callId, ...(await openIdToken(stack.access, accountOf(clerk))) });
    assert.equal(ended.status, 410);
    assert.equal(ended.body.errcode, "KUVERT_CALL_ENDED");
  });
});
