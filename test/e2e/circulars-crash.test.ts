// A circular killed mid fan-out (SIGKILL, with room sends in flight) finishes after a restart
// with every organisation served exactly once: one event per room, one e-mail per clerk.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import pg from "pg";
import { startStack, waitFor, type RoomEvent, type Stack } from "../support/harness.ts";

const COUNT = 30;

async function query<T>(url: string, sql: string, params: unknown[] = []): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query(sql, params)).rows as T[];
  } finally {
    await client.end();
  }
}

describe("a circular killed mid fan-out", () => {
  let stack: Stack;

  before(async () => {
    stack = await startStack({
      name: "circulars-crash",
      childProcess: true,
      configure: (c) => void (c.circulars = { concurrency: 2, progressIntervalSeconds: 0.5 }),
    });
  });
  after(() => stack.stop());

  it("serves every organisation exactly once after a restart, even with sends in flight when it died (test homeserver: sends held mid-flight)", async () => {
    const ids = Array.from({ length: COUNT }, (_, i) => `org-${String(i).padStart(2, "0")}`);
    for (const id of ids) {
      const res = await stack.api("POST", "/api/v1/organisations", { id, name: `Organisation ${id}`, tags: ["crash"], clerks: [{ email: `clerk@${id}.example` }] });
      assert.equal(res.status, 201);
    }
    const rooms = new Map<string, string>();
    for (const id of ids) rooms.set(id, await stack.roomOf(id));

    // Sends into the last ten rooms (claimed last, in id order) are held: the fan-out serves the
    // others, then both delivery slots hang on held sends. Kuvert dies with them in flight; the
    // homeserver processes them after all (as Synapse finishes a send whose client went away).
    const last = ids.slice(-10).map((id) => rooms.get(id)!.replace(/[.*+?^${}()|[\]\\!]/g, "\\$&"));
    const hold = stack.fixture.faults.hold("PUT", new RegExp(`/rooms/(${last.join("|")})/send/m\\.room\\.message/`));
    const res = await stack.api<{ id: string }>("POST", "/api/v1/circulars", { text: "Rundschreiben im Absturz", targets: { tag: "crash" } });
    assert.equal(res.status, 201);
    const circular = res.body.id;
    await hold.waitForHeld(2, 30_000);
    await stack.killKuvert();
    hold.release();

    const url = stack.config.database.url!;
    const mid = await query<{ state: string; n: string }>(url, "SELECT state, count(*) AS n FROM circular_deliveries WHERE circular_id = $1 GROUP BY state", [circular]);
    const pendingAtCrash = Number(mid.find((r) => r.state === "pending")?.n ?? 0);
    assert.ok(pendingAtCrash >= 2, `killed mid fan-out (${JSON.stringify(mid)})`);

    await stack.startKuvert(true);
    await waitFor("the circular to be sent", async () => (await stack.api<{ state: string }>("GET", `/api/v1/circulars/${circular}`)).body.state === "sent", 60_000);
    const status = (await stack.api<{ summary: { pending: number; delivered: number; failed: number }; deliveries: { organisationId: string; eventId: string }[] }>("GET", `/api/v1/circulars/${circular}`)).body;
    assert.deepEqual(status.summary, { pending: 0, delivered: COUNT, failed: 0 });
    for (const [id, roomId] of rooms) {
      const events: RoomEvent[] = (await stack.timeline(roomId)).filter((e) => e.sender === stack.botUserId && (e.content as { body?: string }).body === "Rundschreiben im Absturz");
      assert.equal(events.length, 1, `exactly one circular in the room of ${id}`);
      assert.equal(status.deliveries.find((d) => d.organisationId === id)!.eventId, events[0]!.event_id);
    }
    const mails = await query<{ recipient: string; n: string }>(url, "SELECT recipient, count(*) AS n FROM mail_outbox WHERE kind = 'circular' GROUP BY recipient");
    assert.equal(mails.length, COUNT);
    assert.ok(
      mails.every((m) => m.n === "1"),
      "one e-mail per clerk",
    );
    const audited = await query<{ n: string }>(url, "SELECT count(*) AS n FROM audit_log WHERE action = 'circular.delivered' AND object = $1", [circular]);
    assert.equal(Number(audited[0]!.n), COUNT, "one audit row per organisation");
  });
});
