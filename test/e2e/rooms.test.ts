// Organisation rooms as clerks see them in Element (matrix-js-sdk clients).
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { MatrixEvent } from "matrix-js-sdk";
import { startStack, waitFor, type Stack } from "../support/harness.ts";
import type { TestUser } from "../support/matrix.ts";

function repliesTo(eventId: string) {
  return (e: MatrixEvent) => (e.getContent()["m.relates_to"] as { "m.in_reply_to"?: { event_id?: string } } | undefined)?.["m.in_reply_to"]?.event_id === eventId;
}

describe("organisation rooms", () => {
  let stack: Stack;
  let clerkA: TestUser;
  let clerkB: TestUser;
  let roomA: string;
  let roomB: string;

  before(async () => {
    stack = await startStack({ name: "rooms" });
    clerkA = await stack.user("clerk-a");
    clerkB = await stack.user("clerk-b");
    await Promise.all([clerkA.start(), clerkB.start(), stack.staff.start()]);
  });
  after(() => stack.stop());

  it("invites a clerk, who joins and reads a welcome in a private room with the agreed power levels", async () => {
    const res = await stack.api("POST", "/api/v1/organisations", {
      id: "musterstadt",
      name: "Gemeinde Musterstadt",
      tags: ["municipalities"],
      clerks: [{ matrixId: clerkA.userId, email: "anna@musterstadt.example", name: "Anna" }],
    });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    roomA = await stack.roomOf("musterstadt");

    await clerkA.waitForInvite(roomA);
    const room = await clerkA.join(roomA);
    const welcome = await clerkA.waitForEvent(roomA, "the welcome", (e) => e.getSender() === stack.botUserId && e.getContent().msgtype === "m.notice");
    assert.match(welcome.getContent().body as string, /Willkommen im Raum von Gemeinde Musterstadt/);
    assert.match(welcome.getContent().body as string, /!help/);

    const state = (type: string) => room.currentState.getStateEvents(type, "")?.getContent();
    assert.equal(state("m.room.join_rules")?.join_rule, "invite");
    assert.equal(state("m.room.guest_access")?.guest_access, "forbidden");
    assert.equal(state("m.room.history_visibility")?.history_visibility, "shared");
    assert.equal(state("m.room.name")?.name, "Gemeinde Musterstadt");
    const pl = state("m.room.power_levels")!;
    assert.equal(pl.users[stack.botUserId], 100);
    assert.equal(pl.users[stack.staff.userId], 50);
    assert.equal(pl.users[clerkA.userId], undefined, "clerks have the default level");
    assert.equal(pl.users_default, 0);
    assert.equal(pl.events_default, 0, "clerks may post messages and files");
    assert.equal(room.currentState.maySendMessage(clerkA.userId), true);
    assert.equal(room.currentState.maySendStateEvent("m.room.join_rules", clerkA.userId), false);

    await stack.staff.waitForInvite(roomA);
    const org = await stack.api<{ clerks: { membership: string }[] }>("GET", "/api/v1/organisations/musterstadt");
    await waitFor("the clerk's membership to be recorded", async () => {
      const o = await stack.api<{ clerks: { membership: string }[] }>("GET", "/api/v1/organisations/musterstadt");
      return o.body.clerks[0]?.membership === "join";
    });
    assert.equal(org.status, 200);
  });

  it("answers !help in the room, once", async () => {
    const helpId = await clerkA.say(roomA, "!help");
    const reply = await clerkA.waitForEvent(roomA, "the reply to !help", repliesTo(helpId));
    assert.equal(reply.getSender(), stack.botUserId);
    assert.match(reply.getContent().body as string, /!help/);
    const unknownId = await clerkA.say(roomA, "!frobnicate");
    const refusal = await clerkA.waitForEvent(roomA, "the reply to an unknown command", repliesTo(unknownId));
    assert.match(refusal.getContent().body as string, /kenne ich nicht/);
    assert.equal(clerkA.timeline(roomA).filter(repliesTo(helpId)).length, 1);
  });

  it("keeps a clerk of organisation B out of organisation A's room", async () => {
    const res = await stack.api("POST", "/api/v1/organisations", { id: "schule-b", name: "Schule B", clerks: [{ matrixId: clerkB.userId }] });
    assert.equal(res.status, 201);
    roomB = await stack.roomOf("schule-b");
    assert.notEqual(roomA, roomB);
    await clerkB.waitForInvite(roomB);
    await clerkB.join(roomB);
    assert.equal(clerkB.room(roomA), null, "B's clerk was never invited to A's room");
    await assert.rejects(clerkB.client.joinRoom(roomA), (err: { errcode?: string }) => err.errcode === "M_FORBIDDEN");
    await assert.rejects(clerkB.client.sendEvent(roomA, "m.room.message" as never, { msgtype: "m.text", body: "hello" } as never), (err: { errcode?: string }) => err.errcode === "M_FORBIDDEN");
  });

  it("gives the same room when the organisation is created again", async () => {
    const again = await stack.api<{ outcome: string; organisation: { roomId: string } }>("POST", "/api/v1/organisations", {
      id: "schule-b",
      name: "Schule B",
      clerks: [{ matrixId: clerkB.userId }],
    });
    assert.equal(again.status, 200);
    assert.equal(again.body.outcome, "unchanged");
    assert.equal(again.body.organisation.roomId, roomB);
  });

  it("kicks a removed clerk and lets them back in when added again", async () => {
    const removed = await stack.api("DELETE", `/api/v1/organisations/schule-b/clerks/${encodeURIComponent(clerkB.userId)}`);
    assert.equal(removed.status, 200);
    await clerkB.until("being removed from B's room", () => clerkB.membership(roomB) === "leave");
    const kick = clerkB.room(roomB)!.currentState.getMember(clerkB.userId)!.events.member!;
    assert.equal(kick.getSender(), stack.botUserId);
    const added = await stack.api("POST", "/api/v1/organisations/schule-b/clerks", { matrixId: clerkB.userId });
    assert.equal(added.status, 201);
    await clerkB.waitForInvite(roomB);
  });

  it("makes an archived organisation's room read-only and keeps it", async () => {
    const res = await stack.api<{ organisation: { state: string } }>("POST", "/api/v1/organisations/musterstadt/archive");
    assert.equal(res.status, 200);
    assert.equal(res.body.organisation.state, "archived");
    await clerkA.until("the room to become read-only", () => clerkA.room(roomA)?.currentState.maySendMessage(clerkA.userId) === false);
    await clerkA.waitForEvent(roomA, "the archive notice", (e) => e.getSender() === stack.botUserId && /archiviert/.test(String(e.getContent().body)));
    await assert.rejects(clerkA.say(roomA, "still there?"), (err: { errcode?: string }) => err.errcode === "M_FORBIDDEN");
    assert.equal(clerkA.membership(roomA), "join", "clerks stay and can read");
  });
});
