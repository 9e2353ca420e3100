// Intake paced to delivery (documents.intakeBacklog, appservice/documents/pacing.ts): with a
// backlog of 2, a burst of uploads waits for deliveries instead of being read all at once, and
// never waits on a homeserver that delivers nothing.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { startStack, waitFor, type Stack } from "../support/harness.ts";
import { pdf } from "../support/files.ts";

describe("uploads at the homeserver's pace", () => {
  let stack: Stack;

  const drop = (org: string, name: string) => stack.api<{ id: string; state: string }>("POST", `/api/v1/organisations/${org}/documents?filename=${name}.pdf`, pdf(name), { contentType: "application/pdf" });
  const record = async (id: string) => (await stack.api<{ state: string; createdAt: string; finishedAt: string | null }>("GET", `/api/v1/documents/${id}`)).body;
  const state = async (id: string) => (await record(id)).state;
  const waitedSeconds = async () => {
    const text = await (await fetch(`http://127.0.0.1:${stack.kuvert!.metricsPort}/metrics`)).text();
    return Number(/^kuvert_document_intake_wait_seconds_total (\S+)$/m.exec(text)?.[1] ?? Number.NaN);
  };
  const allDelivered = (ids: string[]) => waitFor(`${ids.length} documents delivered`, async () => (await Promise.all(ids.map(state))).every((s) => s === "delivered"), 60_000);

  before(async () => {
    stack = await startStack({ name: "pacing", configure: (c) => ((c.documents as Record<string, unknown>).intakeBacklog = 2) });
    for (const id of ["paced", "stalled"]) assert.equal((await stack.api("POST", "/api/v1/organisations", { id, name: id })).status, 201);
  });
  after(() => stack.stop());

  it("lets a burst in as documents are delivered, and delivers every one", async () => {
    const before = await waitedSeconds();
    assert.ok(Number.isFinite(before), "the metric is served");
    const answers = await Promise.all(Array.from({ length: 8 }, (_, i) => drop("paced", `paced-${i}`)));
    assert.deepEqual(
      answers.map((a) => a.status),
      Array(8).fill(202),
    );
    assert.ok((await waitedSeconds()) > before, "uploads beyond the backlog of 2 waited");
    const ids = answers.map((a) => a.body.id);
    await allDelivered(ids);
    const records = await Promise.all(ids.map(record));
    const lastAccepted = Math.max(...records.map((r) => Date.parse(r.createdAt)));
    const firstDelivered = Math.min(...records.map((r) => Date.parse(r.finishedAt!)));
    assert.ok(lastAccepted >= firstDelivered, "the last of the burst was taken in only after the first was delivered");
  });

  it("takes uploads at once when nothing is delivered, and they wait in the queue (test homeserver: room events held)", async () => {
    const hold = stack.fixture.faults.hold("PUT", /\/send\/m\.room\.message\//);
    let ids: string[];
    try {
      const started = performance.now();
      const answers = await Promise.all(Array.from({ length: 6 }, (_, i) => drop("stalled", `stalled-${i}`)));
      assert.deepEqual(
        answers.map((a) => a.status),
        Array(6).fill(202),
      );
      ids = answers.map((a) => a.body.id);
      const seconds = (performance.now() - started) / 1000;
      assert.ok(seconds < 15, `all 6 accepted after the 3 s without a delivery, not held until the homeserver answers (${seconds.toFixed(1)} s)`);
      assert.ok(!(await Promise.all(ids.map(state))).includes("delivered"), "none delivered while the homeserver holds its events");
    } finally {
      hold.release();
    }
    await allDelivered(ids);
  });
});
