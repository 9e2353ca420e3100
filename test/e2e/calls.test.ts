// Video consultations end to end: a clerk in a matrix-js-sdk client starts a call with !video,
// Element's Jitsi widget appears exactly as Element itself sends it, Prosody's membership check
// (Kuvert's /verify endpoints) lets members in and nobody else, staff issue guest links that
// arrive by e-mail, and calls end or expire with their widget removed.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { decodeJwt, jwtVerify } from "jose";
import { signGuestLinkToken } from "../../appservice/calls/guest-token.ts";
import { VERIFY_REFUSALS_PER_MINUTE } from "../../appservice/calls/verify.ts";
import { verifications } from "../../appservice/calls/metrics.ts";
import type { MatrixEvent } from "matrix-js-sdk";
import { openDatabase } from "../../appservice/db/database.ts";
import { createToken } from "../../appservice/tokens/tokens.ts";
import { artifactsDir, startStack, waitFor, type Stack } from "../support/harness.ts";
import type { TestUser } from "../support/matrix.ts";

const SECRET = "test-jitsi-secret-0123456789abcdef";
const DOMAIN = "meet.kuvert.test";

/** RFC 4648 base32 without padding, written here independently of Kuvert's. */
function base32(text: string): string {
  const bits = [...Buffer.from(text)].map((b) => b.toString(2).padStart(8, "0")).join("");
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  return (bits.match(/.{1,5}/g) ?? []).map((chunk) => alphabet[parseInt(chunk.padEnd(5, "0"), 2)]).join("");
}

function repliesTo(eventId: string) {
  return (e: MatrixEvent) => (e.getContent()["m.relates_to"] as { "m.in_reply_to"?: { event_id?: string } } | undefined)?.["m.in_reply_to"]?.event_id === eventId;
}

interface CallJson {
  id: string;
  widgetId: string;
  conferenceId: string;
  running: boolean;
  widgetPosted: boolean;
  endReason: string | null;
  endedBy: string | null;
}

describe("video consultations", () => {
  let stack: Stack;
  let clerk: TestUser;
  let stranger: TestUser;
  let roomId: string;
  let otherRoom: string;
  let callId: string;
  let widgetId: string;
  let staffToken: string;

  const widgets = (user: TestUser, room: string) => (user.room(room)?.currentState.getStateEvents("im.vector.modular.widgets") ?? []).filter((e) => typeof e.getContent().url === "string");
  const layout = (user: TestUser, room: string) => user.room(room)?.currentState.getStateEvents("io.element.widgets.layout", "")?.getContent();
  const ask = async (user: TestUser, room: string, text: string, pattern: RegExp) => {
    const id = await user.say(room, text);
    const reply = await user.waitForEvent(room, `the reply to ${text}`, repliesTo(id));
    assert.equal(reply.getSender(), stack.botUserId);
    assert.match(String(reply.getContent().body), pattern);
    return reply;
  };
  const verify = (path: string, body: unknown, headers: Record<string, string> = {}) =>
    fetch(`${stack.publicUrl}${path}`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(body) }).then(async (res) => ({
      status: res.status,
      body: (await res.json()) as Record<string, unknown>,
    }));
  const auditRows = async (action: string) => (await stack.kuvert!.db.query<{ actor: string; object: string; outcome: string; details: Record<string, unknown> }>("SELECT actor, object, outcome, details FROM audit_log WHERE action = $1 ORDER BY seq", [action])).rows;

  before(async () => {
    stack = await startStack({
      name: "calls",
      configure: (raw) => {
        raw.calls = { jitsiDomain: DOMAIN, widgetBaseUrl: "https://element.kuvert.test/", appSecret: SECRET, appId: "kuvert-test", callMinutes: 60, guestLinkMinutes: 30 };
      },
    });
    clerk = await stack.user("clerk");
    stranger = await stack.user("stranger");
    await Promise.all([clerk.start(), stranger.start(), stack.staff.start()]);
    const created = await stack.api("POST", "/api/v1/organisations", { id: "musterstadt", name: "Gemeinde Musterstadt", clerks: [{ matrixId: clerk.userId, email: "anna@musterstadt.example" }] });
    assert.equal(created.status, 201);
    roomId = await stack.roomOf("musterstadt");
    await clerk.waitForInvite(roomId);
    await clerk.join(roomId);
    const other = await stack.api("POST", "/api/v1/organisations", { id: "schule-b", name: "Schule B", clerks: [{ matrixId: stranger.userId }] });
    assert.equal(other.status, 201);
    otherRoom = await stack.roomOf("schule-b");
    await stranger.waitForInvite(otherRoom);
    await stranger.join(otherRoom);
    staffToken = await createToken(stack.kuvert!.db, "case-worker", ["staff"], "test");
  });
  after(() => stack.stop());

  it("starts a call for a clerk with !video: Element's Jitsi widget and layout, field by field", async () => {
    await ask(clerk, roomId, "!video", /Videoberatung ist gestartet/);
    const [widget] = await clerk.until("the Jitsi widget", () => (widgets(clerk, roomId).length === 1 ? widgets(clerk, roomId) : undefined));
    assert.equal(widget!.getSender(), stack.botUserId, "Element shows the bot as the widget's creator (makeAppConfig takes the sender)");
    widgetId = widget!.getStateKey()!;
    assert.match(widgetId, /^[A-Za-z0-9]{24}$/, "Element's randomString(24)");
    const conferenceId = base32(roomId);
    const content = widget!.getContent();
    assert.deepEqual(Object.keys(content).sort(), ["data", "name", "type", "url"]);
    assert.equal(content.type, "jitsi");
    assert.equal(content.name, "Jitsi");
    assert.deepEqual(content.data, { conferenceId, roomName: "Gemeinde Musterstadt", isAudioOnly: false, isVideoChannel: false, domain: DOMAIN, auth: "openidtoken-jwt" });
    assert.equal(
      content.url,
      `https://element.kuvert.test/jitsi.html?confId=${conferenceId}#conferenceDomain=$domain&conferenceId=$conferenceId&isAudioOnly=$isAudioOnly` +
        "&startWithAudioMuted=$startWithAudioMuted&startWithVideoMuted=$startWithVideoMuted&isVideoChannel=$isVideoChannel" +
        "&displayName=$matrix_display_name&avatarUrl=$matrix_avatar_url&userId=$matrix_user_id&roomId=$matrix_room_id&theme=$theme&roomName=$roomName" +
        "&supportsScreensharing=true&language=$org.matrix.msc2873.client_language&auth=openidtoken-jwt",
    );
    await clerk.until("the layout event", () => layout(clerk, roomId));
    assert.deepEqual(layout(clerk, roomId), { widgets: { [widgetId]: { container: "top", index: 0, width: 100, height: 40 } } });
    assert.equal(clerk.room(roomId)!.currentState.getStateEvents("io.element.widgets.layout", "")!.getSender(), stack.botUserId);

    const current = await stack.api<CallJson>("GET", "/api/v1/organisations/musterstadt/call", undefined, { token: staffToken });
    assert.equal(current.status, 200);
    assert.equal(current.body.widgetId, widgetId);
    assert.equal(current.body.conferenceId, conferenceId);
    assert.equal(current.body.running, true);
    assert.equal(current.body.widgetPosted, true);
    callId = current.body.id;
    const started = await auditRows("call.started");
    assert.equal(started.length, 1);
    assert.equal(started[0]!.actor, clerk.userId);
    assert.equal(started[0]!.object, callId);
  });

  it("reuses the running call and says so, for !video and the API", async () => {
    await ask(clerk, roomId, "!video", /läuft schon eine Videoberatung/);
    const again = await stack.api<{ reused: boolean; call: CallJson }>("POST", "/api/v1/organisations/musterstadt/call", undefined, { token: staffToken });
    assert.equal(again.status, 200);
    assert.equal(again.body.reused, true);
    assert.equal(again.body.call.id, callId);
    assert.equal(widgets(clerk, roomId).length, 1);
    assert.equal((await auditRows("call.started")).length, 1);
  });

  it("lets a member's real OpenID token through /verify/user_in_room, as matrix-user-verification-service answers", async () => {
    const openid = await clerk.client.getOpenIdToken();
    const user = await verify("/verify/user", { token: openid.access_token, matrix_server_name: openid.matrix_server_name });
    assert.equal(user.status, 200);
    assert.deepEqual(user.body, { results: { user: true }, user_id: clerk.userId });
    const res = await verify("/verify/user_in_room", { token: openid.access_token, room_id: roomId, matrix_server_name: openid.matrix_server_name });
    assert.equal(res.status, 200);
    assert.deepEqual(res.body.results, { user: true, room_membership: true });
    assert.equal(res.body.user_id, clerk.userId);
    const pl = res.body.power_levels as { room: Record<string, unknown>; user: number };
    assert.equal(pl.user, 0);
    assert.equal(pl.room.users, undefined, "the room's power levels without the users list");
    assert.equal((pl.room.events as Record<string, number>)["im.vector.modular.widgets"], 50);
    const staffOpenid = await stack.staff.client.getOpenIdToken();
    await stack.staff.until("the staff member in the room", () => stack.staff.membership(roomId) === "invite" || stack.staff.membership(roomId) === "join");
    if (stack.staff.membership(roomId) === "invite") await stack.staff.join(roomId);
    const staffRes = await verify("/verify/user_in_room", { token: staffOpenid.access_token, room_id: roomId });
    assert.equal((staffRes.body.power_levels as { user: number }).user, 50, "staff become moderators when Prosody syncs power levels");
  });

  it("refuses a non-member, a forged token, another organisation's room, an unmanaged room and missing fields", async () => {
    const strangerToken = (await stranger.client.getOpenIdToken()).access_token;
    const nonMember = await verify("/verify/user_in_room", { token: strangerToken, room_id: roomId });
    assert.equal(nonMember.status, 200);
    assert.deepEqual(nonMember.body.results, { user: true, room_membership: false });
    assert.equal(nonMember.body.power_levels, null);
    assert.equal(nonMember.body.errcode, "KUVERT_NOT_ROOM_MEMBER");

    const forged = await verify("/verify/user_in_room", { token: "forged-token-that-no-homeserver-issued", room_id: roomId });
    assert.equal(forged.status, 200);
    assert.deepEqual(forged.body.results, { user: false, room_membership: null });
    assert.equal(forged.body.user_id, null);
    assert.equal(forged.body.errcode, "KUVERT_OPENID_TOKEN_INVALID");
    const forgedUser = await verify("/verify/user", { token: "forged" });
    assert.deepEqual(forgedUser.body.results, { user: false });

    const clerkToken = (await clerk.client.getOpenIdToken()).access_token;
    const otherOrg = await verify("/verify/user_in_room", { token: clerkToken, room_id: otherRoom });
    assert.deepEqual(otherOrg.body.results, { user: true, room_membership: false });
    assert.equal(otherOrg.body.errcode, "KUVERT_NOT_ROOM_MEMBER");

    const own = await clerk.client.createRoom({ name: "private" });
    const unmanaged = await verify("/verify/user_in_room", { token: clerkToken, room_id: own.room_id });
    assert.deepEqual(unmanaged.body.results, { user: true, room_membership: false });
    assert.equal(unmanaged.body.errcode, "KUVERT_ROOM_NOT_MANAGED");

    const missing = await verify("/verify/user_in_room", { token: clerkToken });
    assert.equal(missing.status, 400);
    assert.equal(missing.body.errcode, "KUVERT_INVALID_INPUT");
    assert.match(String(missing.body.error), /room_id/);
    assert.equal((await auditRows("call.verify")).length, 0, "refusals are counted, not audited one row each");
    const counted = (await verifications.get()).values.filter((v) => v.labels.outcome !== "admitted").reduce((n, v) => n + v.value, 0);
    assert.ok(counted >= 4, `refusals counted in kuvert_call_verifications_total: ${counted}`);
  });

  it("tells someone without the widget power level what is missing, and changes nothing", async () => {
    const outsider = await stack.user("outsider");
    await outsider.start();
    await stack.staff.client.invite(roomId, outsider.userId);
    await outsider.waitForInvite(roomId);
    await outsider.join(roomId);
    await ask(outsider, roomId, "!video", /Berechtigungsstufe 50.*hinzuzufügen.*haben aber 0/);
    const refused = (await auditRows("call.start")).filter((r) => r.actor === outsider.userId);
    assert.equal(refused.length, 1);
    assert.equal(refused[0]!.outcome, "refused");
    assert.equal(widgets(clerk, roomId).length, 1);
    const list = await stack.api<{ calls: CallJson[] }>("GET", "/api/v1/calls?organisation=musterstadt");
    assert.equal(list.body.calls.length, 1);
    outsider.stop();
  });

  it("says what Kuvert's bot lacks when its power level in the room was lowered, and sends no widget", async () => {
    // A throwaway organisation whose room loses Kuvert's level: the bot demotes itself to 40
    // (through its own appservice token), as if someone had taken its rights away.
    assert.equal((await stack.api("POST", "/api/v1/organisations", { id: "schule-c", name: "Schule C", clerks: [{ matrixId: stranger.userId }] })).status, 201);
    const roomC = await stack.roomOf("schule-c");
    await stranger.waitForInvite(roomC);
    await stranger.join(roomC);
    const plUrl = `${stack.access.url}/_matrix/client/v3/rooms/${encodeURIComponent(roomC)}/state/m.room.power_levels/`;
    const headers = { authorization: `Bearer ${stack.registration.as_token}`, "content-type": "application/json" };
    const pl = (await (await fetch(plUrl, { headers })).json()) as { users: Record<string, number> };
    const demoted = await fetch(plUrl, { method: "PUT", headers, body: JSON.stringify({ ...pl, users: { ...pl.users, [stack.botUserId]: 40 } }) });
    assert.equal(demoted.status, 200, await demoted.text());
    await stranger.until("the bot's lower level", () => stranger.room(roomC)?.currentState.getStateEvents("m.room.power_levels", "")?.getContent().users?.[stack.botUserId] === 40);
    await ask(stranger, roomC, "!video", /Kuvert braucht in diesem Raum Berechtigungsstufe 50 für „im\.vector\.modular\.widgets“, hat aber 40/);
    assert.equal(widgets(stranger, roomC).length, 0);
    const api = await stack.api("POST", "/api/v1/organisations/schule-c/call", undefined, { token: staffToken });
    assert.equal(api.status, 403);
    assert.equal(api.body.errcode, "KUVERT_POWER_LEVEL_MISSING");
    assert.deepEqual(
      (api.body.details as { path: string }[]).map((d) => d.path),
      ["bot", "bot"],
      "both the widget and the layout event",
    );
    const none = await stack.api<{ calls: unknown[] }>("GET", "/api/v1/calls?organisation=schule-c", undefined, { token: staffToken });
    assert.deepEqual(none.body.calls, []);
  });

  it("issues a guest link that only Kuvert's guest page takes, which hands out a short Jitsi JWT with the claims; e-mailed, revocable", async () => {
    const bad = await stack.api("POST", `/api/v1/calls/${callId}/guest-links`, { email: "guest@example.net" }, { token: staffToken });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.errcode, "KUVERT_INVALID_INPUT");
    const tooLong = await stack.api("POST", `/api/v1/calls/${callId}/guest-links`, { name: "G", email: "guest@example.net", validMinutes: 100_000 }, { token: staffToken });
    assert.equal(tooLong.status, 400);

    const issued = await stack.api<{ id: string; url: string; expiresAt: string }>("POST", `/api/v1/calls/${callId}/guest-links`, { name: "Gerda Gast", email: "Gerda@Example.net" }, { token: staffToken });
    assert.equal(issued.status, 201, JSON.stringify(issued.body));
    const url = new URL(issued.body.url);
    assert.equal(url.pathname, "/call/");
    const token = url.hash.slice(1);
    // The link's token is no Jitsi token: its audience is not one Prosody accepts, and the app secret does not verify it.
    const linkClaims = decodeJwt(token);
    assert.equal(linkClaims.aud, "kuvert-guest-link");
    assert.equal(linkClaims.jti, issued.body.id);
    const now = Date.now() / 1000;
    assert.ok(linkClaims.nbf! <= now + 1 && linkClaims.exp! > now + 29 * 60 && linkClaims.exp! <= now + 30 * 60 + 1, "valid for calls.guestLinkMinutes");
    await assert.rejects(jwtVerify(token, new TextEncoder().encode(SECRET)), "Jitsi's app secret does not verify a link token");

    const session = await stack.api<{ jwt: string; roomName: string; domain: string; displayName: string; scriptUrl: string }>("POST", "/api/v1/guest/session", { token }, { token: null });
    assert.equal(session.status, 200);
    const { payload, protectedHeader } = await jwtVerify(session.body.jwt, new TextEncoder().encode(SECRET), { algorithms: ["HS256"] });
    assert.equal(protectedHeader.alg, "HS256");
    assert.equal(payload.iss, "kuvert-test");
    assert.equal(payload.aud, "kuvert-test");
    assert.equal(payload.sub, DOMAIN);
    assert.equal(payload.room, base32(roomId).toLowerCase());
    assert.equal(payload.moderator, false);
    assert.deepEqual(payload.context, { user: { name: "Gerda Gast" } });
    assert.equal(payload.jti, issued.body.id);
    assert.ok(payload.nbf! <= now + 2 && payload.exp! > now + 4 * 60 && payload.exp! <= now + 5 * 60 + 2, "a join token is good for five minutes");
    await assert.rejects(jwtVerify(session.body.jwt, new TextEncoder().encode("another-secret-another-secret!!")), "not valid with another secret");
    assert.equal(session.body.roomName, base32(roomId).toLowerCase());
    assert.equal(session.body.domain, DOMAIN);
    assert.equal(session.body.scriptUrl, `https://${DOMAIN}/external_api.js`);
    assert.equal(session.body.displayName, "Gerda Gast");

    const mail = await waitFor("the invitation e-mail", () => stack.smtp.messages.some((m) => m.to && "text" in m.to && m.to.text === "gerda@example.net"), 20_000).then(() => stack.smtp.messages.find((m) => m.to && "text" in m.to && m.to.text === "gerda@example.net")!);
    assert.match(mail.subject ?? "", /Einladung zur Videoberatung mit Gemeinde Musterstadt/);
    assert.ok((mail.text ?? "").includes(issued.body.url), "the link is in the e-mail");
    assert.ok(!(mail.text ?? "").includes("matrix.to"), "no link into the room for a guest");
    await waitFor("the outbox row to be finished", async () => (await stack.kuvert!.db.query("SELECT 1 FROM mail_outbox WHERE kind = 'guest-link' AND state = 'pending'")).rows.length === 0);
    const outbox = await stack.kuvert!.db.query<{ items: unknown }>("SELECT items FROM mail_outbox WHERE kind = 'guest-link'");
    assert.equal(outbox.rows.length, 1);
    assert.ok(!JSON.stringify(outbox.rows).includes(token) && !JSON.stringify(outbox.rows).includes("/call/"), "the outbox keeps no guest token once the e-mail went out");

    const tampered = token.slice(0, token.indexOf(".") + 5) + (token[token.indexOf(".") + 5] === "A" ? "B" : "A") + token.slice(token.indexOf(".") + 6);
    const refusedTampered = await stack.api("POST", "/api/v1/guest/session", { token: tampered }, { token: null });
    assert.equal(refusedTampered.status, 401);
    assert.equal(refusedTampered.body.errcode, "KUVERT_GUEST_LINK_INVALID");

    const expired = await signGuestLinkToken(SECRET, {
      linkId: issued.body.id,
      appId: "kuvert-test",
      domain: DOMAIN,
      conferenceId: base32(roomId),
      guestName: "Gerda Gast",
      notBefore: new Date((now - 7200) * 1000),
      expiresAt: new Date((now - 60) * 1000),
    });
    const refusedExpired = await stack.api("POST", "/api/v1/guest/session", { token: expired }, { token: null });
    assert.equal(refusedExpired.status, 410);
    assert.equal(refusedExpired.body.errcode, "KUVERT_GUEST_LINK_EXPIRED");

    const revoked = await stack.api<{ outcome: string; link: { state: string } }>("DELETE", `/api/v1/guest-links/${issued.body.id}`, undefined, { token: staffToken });
    assert.equal(revoked.status, 200);
    assert.equal(revoked.body.outcome, "revoked");
    assert.equal(revoked.body.link.state, "revoked");
    const refusedRevoked = await stack.api("POST", "/api/v1/guest/session", { token }, { token: null });
    assert.equal(refusedRevoked.status, 410);
    assert.equal(refusedRevoked.body.errcode, "KUVERT_GUEST_LINK_REVOKED");
    const links = await stack.api<{ guestLinks: { id: string; state: string; email: string }[] }>("GET", `/api/v1/calls/${callId}/guest-links`, undefined, { token: staffToken });
    assert.deepEqual(
      links.body.guestLinks.map((l) => [l.id, l.state, l.email]),
      [[issued.body.id, "revoked", "gerda@example.net"]],
    );

    assert.equal((await auditRows("call.guest_link.issued")).length, 1);
    assert.equal((await auditRows("call.guest_link.revoked"))[0]!.actor, "token:case-worker");
    const log = readFileSync(join(artifactsDir, "logs", "calls.log"), "utf8");
    assert.ok(!log.includes(token.split(".")[2]!), "the guest token is not in the log");
    assert.ok(!log.includes(SECRET), "the secret is not in the log");
    assert.ok(!log.includes("gerda@example.net"), "the guest's address is pseudonymised in the log");
  });

  it("ends the call with !video end: the widget is emptied and the layout entry removed", async () => {
    const pending = await stack.api<{ url: string }>("POST", `/api/v1/calls/${callId}/guest-links`, { name: "Late Guest", email: "late@example.net" }, { token: staffToken });
    assert.equal(pending.status, 201);
    await ask(clerk, roomId, "!video end", /ist beendet/);
    await clerk.until("the widget to be removed", () => widgets(clerk, roomId).length === 0);
    const emptied = clerk.room(roomId)!.currentState.getStateEvents("im.vector.modular.widgets", widgetId)!;
    assert.deepEqual(emptied.getContent(), {});
    assert.equal(emptied.getSender(), stack.botUserId);
    assert.deepEqual(layout(clerk, roomId), { widgets: {} });
    const ended = await auditRows("call.ended");
    assert.equal(ended.length, 1);
    assert.equal(ended[0]!.actor, clerk.userId);

    const none = await stack.api("GET", "/api/v1/organisations/musterstadt/call");
    assert.equal(none.status, 404);
    assert.equal(none.body.errcode, "KUVERT_NO_CALL");
    const forEnded = await stack.api("POST", `/api/v1/calls/${callId}/guest-links`, { name: "Too Late", email: "too-late@example.net" }, { token: staffToken });
    assert.equal(forEnded.status, 409);
    assert.equal(forEnded.body.errcode, "KUVERT_CALL_NOT_RUNNING");
    const lateSession = await stack.api("POST", "/api/v1/guest/session", { token: new URL(pending.body.url).hash.slice(1) }, { token: null });
    assert.equal(lateSession.status, 410);
    assert.equal(lateSession.body.errcode, "KUVERT_CALL_ENDED");
    await ask(clerk, roomId, "!video end", /läuft keine Videoberatung/);
  });

  it("starts a call from the API (staff scope) and removes its widget when it expires", async () => {
    const noScope = await createToken(stack.kuvert!.db, "back-office", ["drop"], "test");
    const refused = await stack.api("POST", "/api/v1/organisations/musterstadt/call", undefined, { token: noScope });
    assert.equal(refused.status, 403);
    const started = await stack.api<{ reused: boolean; call: CallJson }>("POST", "/api/v1/organisations/musterstadt/call", undefined, { token: staffToken });
    assert.equal(started.status, 201);
    assert.equal(started.body.reused, false);
    const call = started.body.call;
    assert.notEqual(call.id, callId);
    await clerk.until("the new widget", () => widgets(clerk, roomId).some((w) => w.getStateKey() === call.widgetId));
    await clerk.waitForEvent(roomId, "the announcement", (e) => e.getSender() === stack.botUserId && /Videoberatung ist gestartet/.test(String(e.getContent().body)));
    const running = await stack.api<{ calls: CallJson[] }>("GET", "/api/v1/calls?state=running", undefined, { token: staffToken });
    assert.deepEqual(
      running.body.calls.map((c) => c.id),
      [call.id],
    );

    // Its time is up (as if callMinutes had passed): the worker removes the widget.
    await stack.kuvert!.db.query("UPDATE calls SET expires_at = now(), run_after = now() WHERE id = $1", [call.id]);
    await clerk.until("the expired widget to be removed", () => widgets(clerk, roomId).length === 0, 20_000);
    await clerk.waitForEvent(roomId, "the expiry notice", (e) => e.getSender() === stack.botUserId && /abgelaufen/.test(String(e.getContent().body)));
    assert.deepEqual(layout(clerk, roomId), { widgets: {} });
    const ended = await stack.api<{ calls: CallJson[] }>("GET", "/api/v1/calls?state=ended&organisation=musterstadt", undefined, { token: staffToken });
    const expired = ended.body.calls.find((c) => c.id === call.id)!;
    assert.equal(expired.endReason, "expired");
    assert.equal(expired.endedBy, "kuvert");
    assert.equal(expired.widgetPosted, false);
    const audited = await auditRows("call.expired");
    assert.deepEqual(
      audited.map((r) => [r.actor, r.object]),
      [["kuvert", call.id]],
    );
  });

  it("removes the widget of a call that expired while Kuvert was stopped, once it is back", async () => {
    const started = await stack.api<{ call: CallJson }>("POST", "/api/v1/organisations/musterstadt/call", undefined, { token: staffToken });
    assert.equal(started.status, 201);
    const call = started.body.call;
    await clerk.until("the widget", () => widgets(clerk, roomId).some((w) => w.getStateKey() === call.widgetId));
    await stack.stopKuvert();
    const db = await openDatabase({ ...stack.config.database, poolSize: 2 });
    try {
      await db.query("UPDATE calls SET expires_at = now() - interval '1 minute', run_after = now() - interval '1 minute' WHERE id = $1", [call.id]);
    } finally {
      await db.close();
    }
    assert.equal(widgets(clerk, roomId).length, 1, "nobody removed it while Kuvert was down");
    await stack.startKuvert();
    await clerk.until("the widget to be removed after the restart", () => widgets(clerk, roomId).length === 0, 20_000);
    // The audit row is written right after the widget is removed.
    await waitFor("the expiry to be audited", async () => (await auditRows("call.expired")).some((r) => r.object === call.id && r.actor === "kuvert"));
  });

  it("answers bad API input with stable codes", async () => {
    const unknownOrg = await stack.api("POST", "/api/v1/organisations/nowhere/call", undefined, { token: staffToken });
    assert.equal(unknownOrg.status, 404);
    assert.equal(unknownOrg.body.errcode, "KUVERT_NOT_FOUND");
    const unknownCall = await stack.api("GET", "/api/v1/calls/00000000-0000-0000-0000-000000000000/guest-links", undefined, { token: staffToken });
    assert.equal(unknownCall.status, 404);
    const badState = await stack.api("GET", "/api/v1/calls?state=maybe", undefined, { token: staffToken });
    assert.equal(badState.status, 400);
    const noToken = await stack.api("GET", "/api/v1/calls", undefined, { token: null });
    assert.equal(noToken.status, 401);
    const noSession = await stack.api("POST", "/api/v1/guest/session", {}, { token: null });
    assert.equal(noSession.status, 400);
    const doc = await stack.api<{ paths: Record<string, Record<string, unknown>> }>("GET", "/api/v1/openapi.json", undefined, { token: null });
    for (const path of ["/organisations/{id}/call", "/calls", "/calls/{callId}/guest-links", "/guest-links/{linkId}", "/guest/session", "/verify/user", "/verify/user_in_room"]) {
      assert.ok(doc.body.paths[path], `${path} is in the OpenAPI document`);
    }
    assert.ok(doc.body.paths["/organisations/{id}/call"]!.post, "starting a call is documented");
  });
  it("answers 429 to an address after too many refusals a minute, and counts them; no audit row grows", async () => {
    // Refusals were once audited one row each; other work (expiry, room sync) may audit meanwhile.
    const refusedRows = async () => ((await stack.kuvert!.db.query("SELECT count(*)::int AS n FROM audit_log WHERE outcome = 'refused'")).rows[0] as { n: number }).n;
    const before = await refusedRows();
    let status = 0;
    for (let i = 0; i <= VERIFY_REFUSALS_PER_MINUTE && status !== 429; i++) {
      status = (await verify("/verify/user_in_room", { token: `made-up-${i}`, room_id: roomId })).status;
    }
    assert.equal(status, 429);
    const limited = await verify("/verify/user", { token: "made-up" });
    assert.equal(limited.status, 429);
    assert.equal(limited.body.errcode, "KUVERT_RATE_LIMITED");
    const rateLimited = (await verifications.get()).values.filter((v) => v.labels.outcome === "rate_limited").reduce((n, v) => n + v.value, 0);
    assert.ok(rateLimited >= 2);
    assert.equal(await refusedRows(), before, "refused verifications write no audit rows");
  });
});

describe("video consultations switched off (modules.calls: false)", () => {
  let stack: Stack;

  before(async () => {
    stack = await startStack({ name: "calls-off", configure: (raw) => void (raw.modules = { calls: false }) });
  });
  after(() => stack.stop());

  it("has no !video, and the API, the guest page and /verify say the module is off", async () => {
    const clerk = await stack.user("clerk");
    await clerk.start();
    assert.equal((await stack.api("POST", "/api/v1/organisations", { id: "musterstadt", name: "Gemeinde Musterstadt", clerks: [{ matrixId: clerk.userId }] })).status, 201);
    const roomId = await stack.roomOf("musterstadt");
    await clerk.waitForInvite(roomId);
    await clerk.join(roomId);
    const id = await clerk.say(roomId, "!video");
    const reply = await clerk.waitForEvent(roomId, "the reply to !video", repliesTo(id));
    assert.match(String(reply.getContent().body), /kenne ich nicht/);
    const helpId = await clerk.say(roomId, "!help");
    const help = await clerk.waitForEvent(roomId, "the reply to !help", repliesTo(helpId));
    assert.doesNotMatch(String(help.getContent().body), /!video/);

    const start = await stack.api("POST", "/api/v1/organisations/musterstadt/call");
    assert.equal(start.status, 404);
    assert.equal(start.body.errcode, "KUVERT_MODULE_NOT_LOADED");
    const session = await stack.api("POST", "/api/v1/guest/session", { token: "a.b.c" }, { token: null });
    assert.equal(session.body.errcode, "KUVERT_MODULE_NOT_LOADED");
    assert.equal((await fetch(`${stack.publicUrl}/call/`)).status, 404);
    const verify = await fetch(`${stack.publicUrl}/verify/user`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ token: "x" }) });
    assert.equal(verify.status, 404);
    assert.equal(widgetsIn(clerk, roomId), 0);
    clerk.stop();
  });
});

describe("video consultations without a Jitsi server configured", () => {
  let stack: Stack;

  before(async () => {
    stack = await startStack({ name: "calls-unconfigured" });
  });
  after(() => stack.stop());

  it("refuses to start a call with KUVERT_NOT_CONFIGURED and serves no guest page", async () => {
    assert.equal((await stack.api("POST", "/api/v1/organisations", { id: "musterstadt", name: "Gemeinde Musterstadt", clerks: [] })).status, 201);
    await stack.roomOf("musterstadt");
    const start = await stack.api("POST", "/api/v1/organisations/musterstadt/call");
    assert.equal(start.status, 503);
    assert.equal(start.body.errcode, "KUVERT_NOT_CONFIGURED");
    assert.match(String(start.body.error), /calls\.jitsiDomain/);
    const listed = await stack.api<{ calls: unknown[] }>("GET", "/api/v1/calls");
    assert.deepEqual(listed.body.calls, [], "nothing was recorded");
    assert.equal((await fetch(`${stack.publicUrl}/call/`)).status, 404);
  });
});

function widgetsIn(user: TestUser, roomId: string): number {
  return (user.room(roomId)?.currentState.getStateEvents("im.vector.modular.widgets") ?? []).length;
}
