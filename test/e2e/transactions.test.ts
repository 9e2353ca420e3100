// Transactions from the homeserver: authenticated, stored before they are answered, handled
// exactly once — also when they are replayed and when Kuvert dies halfway.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import pg from "pg";
import type { MatrixEvent } from "matrix-js-sdk";
import { transactionsReceived } from "../../appservice/metrics.ts";
import { startStack, waitFor, type Stack } from "../support/harness.ts";
import type { TestUser } from "../support/matrix.ts";

const repliesTo = (eventId: string) => (e: MatrixEvent) => (e.getContent()["m.relates_to"] as { "m.in_reply_to"?: { event_id?: string } } | undefined)?.["m.in_reply_to"]?.event_id === eventId;

async function pendingInbound(databaseUrl: string): Promise<number> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const res = await client.query<{ n: string }>("SELECT count(*) AS n FROM inbound_events WHERE state = 'pending'");
    return Number(res.rows[0]!.n);
  } finally {
    await client.end();
  }
}

async function organisationWithClerk(stack: Stack, id: string): Promise<{ clerk: TestUser; roomId: string }> {
  const clerk = await stack.user("clerk");
  await clerk.start();
  const res = await stack.api("POST", "/api/v1/organisations", { id, name: id, clerks: [{ matrixId: clerk.userId }] });
  assert.equal(res.status, 201, JSON.stringify(res.body));
  const roomId = await stack.roomOf(id);
  await clerk.waitForInvite(roomId);
  await clerk.join(roomId);
  return { clerk, roomId };
}

describe("appservice transactions", () => {
  let stack: Stack;
  let clerk: TestUser;
  let roomId: string;

  before(async () => {
    stack = await startStack({ name: "transactions" });
    ({ clerk, roomId } = await organisationWithClerk(stack, "replay"));
  });
  after(() => stack.stop());

  it("refuses a missing or wrong hs_token as the spec says", async () => {
    const none = await stack.pushTransaction("t-none", [], null);
    assert.equal(none.status, 401);
    assert.equal(none.body.errcode, "M_UNAUTHORIZED");
    const wrong = await stack.pushTransaction("t-wrong", [], "not-the-token");
    assert.equal(wrong.status, 403);
    assert.equal(wrong.body.errcode, "M_FORBIDDEN");
    const asToken = await stack.pushTransaction("t-as", [], stack.registration.as_token);
    assert.equal(asToken.status, 403, "the as_token is Kuvert's own, not the homeserver's");
  });

  it("handles a replayed transaction, and an event seen in two transactions, once", async () => {
    const event = {
      event_id: `$replayed-${Date.now()}`,
      room_id: roomId,
      type: "m.room.message",
      sender: clerk.userId,
      origin_server_ts: Date.now(),
      content: { msgtype: "m.text", body: "!help" },
    };
    for (const txnId of ["replay-1", "replay-1", "replay-1", "replay-2"]) {
      const res = await stack.pushTransaction(txnId, [event]);
      assert.equal(res.status, 200);
      assert.deepEqual(res.body, {});
    }
    await clerk.waitForEvent(roomId, "the reply", repliesTo(event.event_id));
    await waitFor("the inbox to be empty", async () => (await pendingInbound(stack.config.database.url!)) === 0);
    const stored = await stack.kuvert!.db.query<{ n: string }>("SELECT count(*) AS n FROM inbound_events WHERE event_id = $1", [event.event_id]);
    assert.equal(stored.rows[0]!.n, "1");
    assert.equal(clerk.timeline(roomId).filter(repliesTo(event.event_id)).length, 1);
  });

  it("keeps nothing of a transaction that holds only Kuvert's own events (echoes), and wakes no worker for it", async () => {
    const echoes = async () => (await transactionsReceived.get()).values.find((v) => v.labels["outcome"] === "echoes")?.value ?? 0;
    // A real homeserver also pushes echoes of its own accord (Kuvert's earlier messages), which
    // the counter counts too: a try during which one came is tried again.
    const counted: number[] = [];
    for (let attempt = 0; attempt < 3 && counted.at(-1) !== 1; attempt++) {
      const before = await echoes();
      const own = { event_id: `$echo-${Date.now()}-${attempt}`, room_id: roomId, type: "m.room.message", sender: stack.botUserId, origin_server_ts: Date.now(), content: { msgtype: "m.notice", body: "an echo" } };
      const res = await stack.pushTransaction(`echo-${Date.now()}-${attempt}`, [own]);
      assert.equal(res.status, 200);
      counted.push((await echoes()) - before);
      const kept = await stack.kuvert!.db.query<{ n: string }>("SELECT count(*) AS n FROM inbound_events WHERE event_id = $1", [own.event_id]);
      assert.equal(kept.rows[0]!.n, "0");
    }
    assert.equal(counted.at(-1), 1, `the transaction counted as echoes once (counted per try: ${counted.join(", ")})`);
  });

  it("reports the room lost when Kuvert is kicked from it", async () => {
    const kick = {
      event_id: `$kick-${Date.now()}`,
      room_id: roomId,
      type: "m.room.member",
      state_key: stack.botUserId,
      sender: "@server-admin:elsewhere.example",
      origin_server_ts: Date.now(),
      content: { membership: "leave", reason: "test" },
    };
    assert.equal((await stack.pushTransaction(`kick-${Date.now()}`, [kick])).status, 200);
    await waitFor("the room to be reported lost", async () => {
      const org = await stack.api<{ roomState: string; roomProblem: string }>("GET", "/api/v1/organisations/replay");
      return org.body.roomState === "lost" && /removed from the room/.test(org.body.roomProblem);
    });
    const audited = await stack.kuvert!.db.query("SELECT 1 FROM audit_log WHERE action = 'room.lost' AND organisation_id = 'replay'");
    assert.equal(audited.rowCount, 1);
  });
});

describe("a crash between storing and handling", () => {
  let stack: Stack;

  before(async () => {
    stack = await startStack({ name: "crash", childProcess: true });
  });
  after(() => stack.stop());

  it("handles the event exactly once after a restart, even when the reply was in flight (test homeserver: a send held mid-flight)", async () => {
    const { clerk, roomId } = await organisationWithClerk(stack, "crash");
    // Kuvert's replies use transaction ids starting with "kuvert."; hold them so Kuvert dies mid-send.
    const hold = stack.fixture.faults.hold("PUT", /\/send\/m\.room\.message\/kuvert\./);
    const commandId = await clerk.say(roomId, "!help");
    await hold.waitForHeld(1, 20_000);
    await stack.killKuvert();
    hold.release();
    await stack.startKuvert(true);
    await clerk.waitForEvent(roomId, "the reply after the restart", repliesTo(commandId), 30_000);
    await waitFor("the inbox to be empty", async () => (await pendingInbound(stack.config.database.url!)) === 0, 30_000);
    assert.equal(clerk.timeline(roomId).filter(repliesTo(commandId)).length, 1);
    const hsReplies = (await stack.timeline(roomId)).filter((e) => (e.content["m.relates_to"] as { "m.in_reply_to"?: { event_id?: string } } | undefined)?.["m.in_reply_to"]?.event_id === commandId);
    assert.equal(hsReplies.length, 1, "the homeserver holds one reply");
  });

  it("gets transactions sent while Kuvert was down, and handles them once", async () => {
    const { clerk, roomId } = await organisationWithClerk(stack, "downtime");
    await stack.killKuvert();
    const commandId = await clerk.say(roomId, "!help");
    await new Promise((r) => setTimeout(r, 500));
    await stack.startKuvert(true);
    await clerk.waitForEvent(roomId, "the reply after Kuvert came back", repliesTo(commandId), 30_000);
    await waitFor("the inbox to be empty", async () => (await pendingInbound(stack.config.database.url!)) === 0, 30_000);
    assert.equal(clerk.timeline(roomId).filter(repliesTo(commandId)).length, 1);
  });
});
