// Behind a load balancer the homeserver's transactions reach any Kuvert process. Two processes
// on one PostgreSQL, the same transaction id pushed to both at the same moment and again: one
// stored transaction, one stored event, one reply in the room. And the drop folder is read by
// exactly one of them.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { MatrixEvent } from "matrix-js-sdk";
import { startStack, waitFor, type Stack } from "../support/harness.ts";
import type { TestUser } from "../support/matrix.ts";
import { KuvertProcess } from "../support/processes.ts";

const repliesTo = (eventId: string) => (e: MatrixEvent) => (e.getContent()["m.relates_to"] as { "m.in_reply_to"?: { event_id?: string } } | undefined)?.["m.in_reply_to"]?.event_id === eventId;

describe("transactions to two Kuvert processes on one database", () => {
  let stack: Stack;
  let clerk: TestUser;
  let roomId: string;
  let second: KuvertProcess | undefined;

  before(async () => {
    stack = await startStack({
      name: "processes-transactions",
      configure: (raw) => {
        (raw.documents as Record<string, unknown>).dropFolder = { enabled: true, pollSeconds: 1, stableSeconds: 1 };
      },
    });
    clerk = await stack.user("clerk");
    await clerk.start();
    const res = await stack.api("POST", "/api/v1/organisations", { id: "twice", name: "Twice", clerks: [{ matrixId: clerk.userId }] });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    roomId = await stack.roomOf("twice");
    await clerk.waitForInvite(roomId);
    await clerk.join(roomId);

    // A second process: the same configuration, listeners of its own.
    second = await KuvertProcess.of(stack, "second");
    await second.start();
  });
  after(async () => {
    await second?.stop();
    await stack.stop();
  });

  async function push(port: number, txnId: string, events: unknown[]): Promise<number> {
    const res = await fetch(`http://127.0.0.1:${port}/_matrix/app/v1/transactions/${encodeURIComponent(txnId)}`, {
      method: "PUT",
      headers: { "content-type": "application/json", authorization: `Bearer ${stack.registration.hs_token}` },
      body: JSON.stringify({ events }),
    });
    await res.arrayBuffer();
    return res.status;
  }

  it("the same transaction to both at once, and again to each, has one set of effects", async () => {
    const firstPort = stack.config.appservice.listener.port;
    const secondPort = second!.asPort;
    const events = [0, 1, 2].map((i) => ({
      event_id: `$two-processes-${i}-${Date.now()}`,
      room_id: roomId,
      type: "m.room.message",
      sender: clerk.userId,
      origin_server_ts: Date.now(),
      content: { msgtype: "m.text", body: "!help" },
    }));
    const txnId = `both-${Date.now()}`;
    const statuses = await Promise.all([push(firstPort, txnId, events), push(secondPort, txnId, events), push(secondPort, txnId, events), push(firstPort, txnId, events)]);
    assert.deepEqual(statuses, [200, 200, 200, 200]);
    assert.equal(await push(secondPort, txnId, events), 200);
    assert.equal(await push(firstPort, txnId, events), 200);

    for (const e of events) await clerk.waitForEvent(roomId, `the reply to ${e.event_id}`, repliesTo(e.event_id));
    const db = stack.kuvert!.db;
    await waitFor("the inbox to be handled", async () => {
      const res = await db.query<{ n: string }>("SELECT count(*) AS n FROM inbound_events WHERE state = 'pending'");
      return res.rows[0]!.n === "0";
    });
    const txns = await db.query<{ n: string }>("SELECT count(*) AS n FROM appservice_transactions WHERE txn_id = $1", [txnId]);
    assert.equal(txns.rows[0]!.n, "1");
    // A moment for a second reply to arrive if one were sent.
    await new Promise((r) => setTimeout(r, 2000));
    const timeline = await stack.timeline(roomId);
    for (const e of events) {
      const stored = await db.query<{ n: string }>("SELECT count(*) AS n FROM inbound_events WHERE event_id = $1", [e.event_id]);
      assert.equal(stored.rows[0]!.n, "1");
      const replies = timeline.filter((t) => (t.content as { "m.relates_to"?: { "m.in_reply_to"?: { event_id?: string } } })["m.relates_to"]?.["m.in_reply_to"]?.event_id === e.event_id);
      assert.equal(replies.length, 1, `one reply to ${e.event_id}`);
    }
  });

  it("one of the two holds the drop folder's lease", async () => {
    const db = stack.kuvert!.db;
    await waitFor("a holder of the drop folder", async () => {
      const res = await db.query<{ n: string }>("SELECT count(*) AS n FROM leaders WHERE name = 'drop-folder' AND lease_until > now()");
      return res.rows[0]!.n === "1";
    });
  });
});
