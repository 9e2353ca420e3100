// Kuvert against a homeserver that answers as Synapse 1.67 does (the test homeserver with
// `synapse: "1.67"`; a real Synapse 1.67 behaves the same): transactions on the legacy routes
// with the token in the query, no appservice ping, no authenticated media, no async upload.
// Observed as a Matrix client and through Kuvert's API; tests that need what only the test
// homeserver can do (hold or fail a request, count requests) say "(test homeserver: …)" in their names.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { MatrixEvent } from "matrix-js-sdk";
import { artifactsDir, startStack, waitFor, type Stack } from "../support/harness.ts";
import type { TestUser } from "../support/matrix.ts";
import { pdf } from "../support/files.ts";

interface DocumentStatus {
  id: string;
  state: string;
  reason: string | null;
  eventId: string | null;
}

interface OrganisationView {
  roomId: string | null;
  roomState: string;
  roomProblem: string | null;
  powerLevelsProblem: string | null;
}

/** A document dropped through the API with the admin token. */
async function drop(stack: Stack, org: string, name: string, content: Buffer): Promise<DocumentStatus> {
  const res = await fetch(`${stack.publicUrl}/api/v1/organisations/${org}/documents?${new URLSearchParams({ filename: name, kind: "Bescheid" })}`, {
    method: "POST",
    headers: { authorization: `Bearer ${stack.adminToken}`, "content-type": "application/pdf", "idempotency-key": `compat-${name}` },
    body: new Uint8Array(content),
  });
  assert.equal(res.status, 202, await res.clone().text());
  return (await res.json()) as DocumentStatus;
}

async function until(stack: Stack, id: string, states: string[], timeoutMs = 30_000): Promise<DocumentStatus> {
  let last: DocumentStatus | undefined;
  await waitFor(
    `document ${id} to reach ${states.join(" or ")}`,
    async () => {
      last = (await stack.api<DocumentStatus>("GET", `/api/v1/documents/${id}`)).body;
      return states.includes(last.state);
    },
    timeoutMs,
  );
  return last!;
}

async function organisationWithClerk(stack: Stack, id: string, email: string): Promise<{ clerk: TestUser; roomId: string }> {
  const clerk = await stack.user(`clerk-${id}`);
  await clerk.start();
  const res = await stack.api("POST", "/api/v1/organisations", { id, name: `Org ${id}`, clerks: [{ matrixId: clerk.userId, email }] });
  assert.equal(res.status, 201, JSON.stringify(res.body));
  const roomId = await stack.roomOf(id);
  await clerk.waitForInvite(roomId);
  await clerk.join(roomId);
  // The welcome is Kuvert's last send of the room's setup: a test that holds the room's next
  // message must not catch it instead.
  await clerk.waitForEvent(roomId, "the welcome", (e) => e.getSender() === stack.botUserId && e.getContent().msgtype === "m.notice");
  return { clerk, roomId };
}

const fileEvents = (user: TestUser, roomId: string, name: string) => user.timeline(roomId).filter((e: MatrixEvent) => e.getContent().msgtype === "m.file" && e.getContent().body === name);
/** Matching requests the test homeserver saw from now on. */
function since(hs: NonNullable<Stack["hs"]>, method: string, path: RegExp): () => number {
  const base = hs.faults.requests(method, path);
  return () => hs.faults.requests(method, path) - base;
}
const mailsTo = (stack: Stack, address: string) => stack.smtp.messages.filter((m) => m.to && "text" in m.to && m.to.text === address);

describe("Synapse 1.67: transactions, readiness, media, refusals, power levels", () => {
  let stack: Stack;
  let clerk: TestUser;
  let roomId: string;
  const asUrl = () => `http://127.0.0.1:${stack.config.appservice.listener.port}`;

  before(async () => {
    stack = await startStack({
      name: "synapse-compat",
      homeserver: { synapse: "1.67" },
      // Debug level: every transaction is logged, so the test can look for the token in the log.
      configure: (c) => ((c.logging as Record<string, unknown>).level = "debug"),
    });
    await stack.staff.start();
    ({ clerk, roomId } = await organisationWithClerk(stack, "altstadt", "anna@altstadt.example"));
  });
  after(() => stack.stop());

  it("receives events the homeserver pushes to the legacy routes, and answers a command", async () => {
    const commandId = await clerk.say(roomId, "!help");
    await clerk.waitForEvent(roomId, "Kuvert's answer to !help", (e) => e.getSender() === stack.botUserId && e.getContent()["m.relates_to"]?.["m.in_reply_to"]?.event_id === commandId, 30_000);
  });

  it("checks the hs_token in the query on the legacy routes, and never writes it to the log", async () => {
    const token = stack.registration.hs_token;
    const put = (path: string, query: string) => fetch(`${asUrl()}${path}${query}`, { method: "PUT", headers: { "content-type": "application/json" }, body: JSON.stringify({ events: [] }) });
    assert.equal((await put("/transactions/compat-1", `?access_token=${encodeURIComponent(token)}`)).status, 200);
    assert.equal((await put("/transactions/compat-2", "?access_token=wrong")).status, 403);
    assert.equal((await put("/transactions/compat-3", "")).status, 401);
    // The spec allows the query token on the current routes too, for older homeservers.
    assert.equal((await put("/_matrix/app/v1/transactions/compat-4", `?access_token=${encodeURIComponent(token)}`)).status, 200);
    const user = await fetch(`${asUrl()}/users/${encodeURIComponent("@someone:example.org")}?access_token=${encodeURIComponent(token)}`);
    assert.equal(user.status, 404);
    assert.equal(((await user.json()) as { errcode: string }).errcode, "M_NOT_FOUND");
    assert.equal((await fetch(`${asUrl()}/rooms/${encodeURIComponent("#x:example.org")}?access_token=wrong`)).status, 403);
    // Never on the public listener.
    const onPublic = await fetch(`${stack.publicUrl}/transactions/compat-5?access_token=${encodeURIComponent(token)}`, { method: "PUT", headers: { "content-type": "application/json" }, body: '{"events":[]}' });
    assert.notEqual(onPublic.status, 200);
    const log = readFileSync(join(artifactsDir, "logs", "synapse-compat.log"), "utf8");
    assert.match(log, /"txnId":"compat-1"/, "the transaction was logged (at debug level)");
    assert.ok(!log.includes(token), "the hs_token appears in no log line");
  });

  it("is ready: the appservice ping's 400 M_UNRECOGNIZED falls back to whoami", async () => {
    const res = await fetch(`${asUrl()}/readyz`);
    const body = (await res.json()) as { checks: Record<string, { ok: boolean; detail: string }> };
    assert.equal(res.status, 200, JSON.stringify(body));
    assert.equal(body.checks.homeserver?.ok, true);
    assert.match(body.checks.homeserver!.detail, /no appservice ping/);
    assert.equal((await stack.api("GET", "/readyz", undefined, { token: null })).status, 200);
  });

  it("delivers documents with plain uploads that clients download from /_matrix/media/v3", async () => {
    const content = pdf("Bescheid 1");
    const doc = await drop(stack, "altstadt", "Bescheid-1.pdf", content);
    const done = await until(stack, doc.id, ["delivered"]);
    const [file] = await clerk.until("the file in the room", () => {
      const found = fileEvents(clerk, roomId, "Bescheid-1.pdf");
      return found.length > 0 ? found : undefined;
    });
    assert.equal(file!.getId(), done.eventId);
    const mxc = String(file!.getContent().url);
    const [serverName, mediaId] = mxc.slice("mxc://".length).split("/");
    // What a client of 1.67 does: the unauthenticated download (authenticated media answers 400 M_UNRECOGNIZED).
    const v1 = await fetch(`${stack.access.url}/_matrix/client/v1/media/download/${serverName}/${mediaId}`, { headers: { authorization: `Bearer ${clerk.client.getAccessToken()}` } });
    assert.equal(v1.status, 400);
    const v3 = await fetch(`${stack.access.url}/_matrix/media/v3/download/${serverName}/${mediaId}`);
    assert.equal(v3.status, 200);
    assert.deepEqual(Buffer.from(await v3.arrayBuffer()), content);
    await waitFor("the clerk's e-mail", () => mailsTo(stack, "anna@altstadt.example").length === 1);
  });

  it("checks a clerk's upload, downloading it without authenticated media", async () => {
    const upload = await clerk.client.uploadContent(new Uint8Array(pdf("Antrag")), { name: "Antrag.pdf", type: "application/pdf" });
    const sent = await clerk.client.sendMessage(roomId, { msgtype: "m.file", body: "Antrag.pdf", url: upload.content_uri, info: { mimetype: "application/pdf" } } as never);
    await clerk.waitForEvent(roomId, "the checked mark", (e) => e.getType() === "m.reaction" && e.getContent()["m.relates_to"]?.event_id === sent.event_id, 30_000);
  });

  it("asks the homeserver about async upload and authenticated media once, not per document (test homeserver: counts requests)", async () => {
    const hs = stack.fixture;
    const creates = since(hs, "POST", /^\/_matrix\/media\/v1\/create$/);
    const authenticated = since(hs, "GET", /^\/_matrix\/client\/v1\/media\/download\//);
    const puts = since(hs, "PUT", /^\/_matrix\/media\/v3\/upload\//);
    const docs = await Promise.all([1, 2, 3].map((n) => drop(stack, "altstadt", `Serie-${n}.pdf`, pdf(`Serie ${n}`))));
    for (const d of docs) await until(stack, d.id, ["delivered"]);
    for (const n of [1, 2]) {
      const upload = await clerk.client.uploadContent(new Uint8Array(pdf(`Beleg ${n}`)), { name: `Beleg-${n}.pdf`, type: "application/pdf" });
      const sent = await clerk.client.sendMessage(roomId, { msgtype: "m.file", body: `Beleg-${n}.pdf`, url: upload.content_uri } as never);
      await clerk.waitForEvent(roomId, `the checked mark on Beleg-${n}`, (e) => e.getType() === "m.reaction" && e.getContent()["m.relates_to"]?.event_id === sent.event_id, 30_000);
    }
    // The earlier tests learnt both answers already: none of these asked again.
    assert.equal(creates(), 0, "no further POST /_matrix/media/v1/create");
    assert.equal(authenticated(), 0, "no further authenticated download");
    assert.equal(puts(), 0, "no PUT upload");
  });

  it("fails a document the homeserver refuses for good (413 M_TOO_LARGE) at once, with the reason for staff (test homeserver: 413 on demand)", async () => {
    const hs = stack.fixture;
    const uploads = since(hs, "POST", /^\/_matrix\/media\/v3\/upload$/);
    hs.faults.failNext("POST", /^\/_matrix\/media\/v3\/upload$/, 1, 413, { errcode: "M_TOO_LARGE", error: "Cannot upload files larger than 50M" });
    const doc = await drop(stack, "altstadt", "Riesig.pdf", pdf("Riesig"));
    const failed = await until(stack, doc.id, ["failed", "delivered"]);
    assert.equal(failed.state, "failed");
    assert.match(failed.reason ?? "", /M_TOO_LARGE/);
    assert.equal(uploads(), 1, "not retried");
    const staffRoomId = stack.kuvert!.services.staffRoom.roomId!;
    if (stack.staff.membership(staffRoomId) !== "join") {
      await stack.staff.waitForInvite(staffRoomId);
      await stack.staff.join(staffRoomId);
    }
    await stack.staff.waitForEvent(staffRoomId, "the alert about the document", (e) => String(e.getContent().body).includes(doc.id) && /M_TOO_LARGE/.test(String(e.getContent().body)), 20_000);
    await waitFor("the staff mailbox alert", () => mailsTo(stack, "staff@body.example").some((m) => (m.text ?? "").includes(doc.id)));
    const audited = await stack.kuvert!.db.query("SELECT 1 FROM audit_log WHERE action = 'document.failed' AND object = $1", [doc.id]);
    assert.equal(audited.rowCount, 1);
    assert.equal(fileEvents(clerk, roomId, "Riesig.pdf").length, 0);
  });

  it("sets power levels changed by someone else back as the change arrives", async () => {
    const boss = await stack.user("boss");
    await boss.start();
    await asBot(stack, "POST", `/rooms/${encodeURIComponent(roomId)}/invite`, { user_id: boss.userId });
    await boss.waitForInvite(roomId);
    await boss.join(roomId);
    // A server admin made boss an administrator of the room (as Kuvert's bot, so Kuvert does not react to it).
    const levels = await powerLevels(clerk, roomId);
    await asBot(stack, "PUT", `/rooms/${encodeURIComponent(roomId)}/state/m.room.power_levels/`, { ...levels, users: { ...(levels.users as object), [boss.userId]: 100 } });
    await clerk.until("boss at 100", () => ((powerLevelsNow(clerk, roomId).users as Record<string, number>)[boss.userId] === 100 ? true : undefined));
    // Boss mutes the clerks by hand; Kuvert opens the room again at once (no other change would trigger it).
    const edited = { ...powerLevelsNow(clerk, roomId), events_default: 50 };
    await boss.client.sendStateEvent(roomId, "m.room.power_levels" as never, edited as never, "");
    await clerk.until(
      "events_default back at 0",
      () => {
        const events = clerk.timeline(roomId).filter((e) => e.getType() === "m.room.power_levels");
        const last = events.at(-1);
        return last?.getSender() === stack.botUserId && last.getContent().events_default === 0 ? true : undefined;
      },
      20_000,
    );
    const org = (await stack.api<OrganisationView>("GET", "/api/v1/organisations/altstadt")).body;
    assert.equal(org.powerLevelsProblem, null);
    assert.equal(org.roomState, "ready");

    // Boss raises a staff member to 100: Kuvert may not lower a level equal to its own (403).
    const staffToHundred = { ...powerLevelsNow(clerk, roomId) };
    staffToHundred.users = { ...(staffToHundred.users as object), [stack.staff.userId]: 100 };
    await boss.client.sendStateEvent(roomId, "m.room.power_levels" as never, staffToHundred as never, "");
    let view: OrganisationView | undefined;
    await waitFor(
      "the power-level problem on the organisation",
      async () => {
        view = (await stack.api<OrganisationView>("GET", "/api/v1/organisations/altstadt")).body;
        return view.powerLevelsProblem !== null;
      },
      20_000,
    );
    assert.equal(view!.roomState, "ready", "the room is not lost");
    assert.match(view!.powerLevelsProblem!, /refused/);
    const staffRoomId = stack.kuvert!.services.staffRoom.roomId!;
    if (stack.staff.membership(staffRoomId) !== "join") {
      await stack.staff.waitForInvite(staffRoomId);
      await stack.staff.join(staffRoomId);
    }
    await stack.staff.waitForEvent(staffRoomId, "the power-level alert", (e) => /altstadt/.test(String(e.getContent().body)) && /Element/.test(String(e.getContent().body)), 20_000);

    // Everything else was set back all the same; the room keeps working: a document still
    // arrives, and another edit is set back again without alerting anyone a second time.
    assert.equal(powerLevelsNow(clerk, roomId).events_default, 0);
    const doc = await drop(stack, "altstadt", "Danach.pdf", pdf("Danach"));
    await until(stack, doc.id, ["delivered"]);
    // Built on the state as the server has it now: the clerk's client may not have synced the
    // staff member's 100 yet, and an edit that lowered it would be refused (as it was for Kuvert).
    const again = { ...(await powerLevelsOnServer(stack, roomId)), events_default: 50 };
    const againId = (await boss.client.sendStateEvent(roomId, "m.room.power_levels" as never, again as never, "")).event_id;
    await clerk.until(
      "the second edit set back",
      () => {
        const events = clerk.timeline(roomId).filter((e) => e.getType() === "m.room.power_levels");
        const at = events.findIndex((e) => e.getId() === againId);
        return at >= 0 && events.slice(at + 1).some((e) => e.getSender() === stack.botUserId && e.getContent().events_default === 0) ? true : undefined;
      },
      20_000,
    );
    const refused = await stack.kuvert!.db.query("SELECT 1 FROM audit_log WHERE action = 'room.power-levels-refused' AND organisation_id = 'altstadt'");
    assert.equal(refused.rowCount, 1, "audited and alerted once");
    const alerts = stack.staff.timeline(staffRoomId).filter((e) => /altstadt/.test(String(e.getContent().body)) && /Element/.test(String(e.getContent().body)));
    assert.equal(alerts.length, 1);
    assert.equal((await stack.api<OrganisationView>("GET", "/api/v1/organisations/altstadt")).body.roomState, "ready");

    // Only the staff member can lower their own level (nobody may lower a level equal to their own): then the problem is gone.
    if (stack.staff.membership(roomId) !== "join") {
      await stack.staff.waitForInvite(roomId);
      await stack.staff.join(roomId);
    }
    const fixed = { ...(await powerLevelsOnServer(stack, roomId)) };
    fixed.users = { ...(fixed.users as object), [stack.staff.userId]: 50 };
    await stack.staff.client.sendStateEvent(roomId, "m.room.power_levels" as never, fixed as never, "");
    await waitFor("the problem to clear", async () => (await stack.api<OrganisationView>("GET", "/api/v1/organisations/altstadt")).body.powerLevelsProblem === null, 20_000);
    await clerk.until("events_default back at 0 again", () => (powerLevelsNow(clerk, roomId).events_default === 0 ? true : undefined), 20_000);
  });
});

/** A client-server request as Kuvert's bot (its as_token), for what a server admin would do by hand. */
async function asBot(stack: Stack, method: string, path: string, body: unknown): Promise<void> {
  const res = await fetch(`${stack.access.url}/_matrix/client/v3${path}`, {
    method,
    headers: { authorization: `Bearer ${stack.registration.as_token}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  assert.ok(res.ok, `${method} ${path}: ${res.status} ${await res.text()}`);
}

function powerLevelsNow(user: TestUser, roomId: string): Record<string, unknown> {
  return (user.room(roomId)?.currentState.getStateEvents("m.room.power_levels", "")?.getContent() ?? {}) as Record<string, unknown>;
}

/** The room's power levels as the homeserver has them now (its current state, not a client's view). */
async function powerLevelsOnServer(stack: Stack, roomId: string): Promise<Record<string, unknown>> {
  const event = (await stack.roomState(roomId)).find((e) => e.type === "m.room.power_levels" && e.state_key === "");
  assert.ok(event, "the room has power levels");
  return event.content;
}

async function powerLevels(user: TestUser, roomId: string): Promise<Record<string, unknown>> {
  return user.until("the power levels", () => {
    const c = powerLevelsNow(user, roomId);
    return Object.keys(c).length > 0 ? c : undefined;
  });
}

describe("Synapse 1.67: a crash between the plain upload and the room event", () => {
  let stack: Stack;

  before(async () => {
    stack = await startStack({ name: "synapse-compat-crash", childProcess: true, homeserver: { synapse: "1.67" } });
  });
  after(() => stack.stop());

  it("SIGKILL after the upload resumes with exactly one event and one e-mail, and never uploads again (test homeserver: the room event held)", async () => {
    const hs = stack.fixture;
    const { clerk, roomId } = await organisationWithClerk(stack, "neustadt", "nina@neustadt.example");
    const uploads = since(hs, "POST", /^\/_matrix\/media\/v3\/upload$/);
    const puts = since(hs, "PUT", /^\/_matrix\/media\/v3\/upload\//);
    // The first room event of a delivery is the short text; Kuvert dies while it is in flight.
    const hold = hs.faults.hold("PUT", new RegExp(`/rooms/${roomId.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}/send/m\\.room\\.message/kuvert\\.`));
    const doc = await drop(stack, "neustadt", "Absturz.pdf", pdf("Absturz"));
    await hold.waitForHeld(1, 30_000);
    assert.equal(uploads(), 1, "uploaded once before the crash");
    await stack.killKuvert();
    hold.release();
    await stack.startKuvert(true);
    const done = await until(stack, doc.id, ["delivered", "failed"], 60_000);
    assert.equal(done.state, "delivered", done.reason ?? "");
    await clerk.until("the file in the room", () => (fileEvents(clerk, roomId, "Absturz.pdf").length > 0 ? true : undefined));
    await waitFor("the clerk's e-mail", () => mailsTo(stack, "nina@neustadt.example").length >= 1);
    // Give a duplicate time to show up.
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(fileEvents(clerk, roomId, "Absturz.pdf").length, 1, "one file event");
    const texts = clerk.timeline(roomId).filter((e) => e.getSender() === stack.botUserId && e.getContent().msgtype === "m.notice" && /Bescheid/.test(String(e.getContent().body)));
    assert.equal(texts.length, 1, "one short text");
    assert.equal(mailsTo(stack, "nina@neustadt.example").length, 1, "one e-mail");
    assert.equal(uploads(), 1, "the file was not uploaded again");
    assert.equal(puts(), 0, "and never PUT");
  });
});
