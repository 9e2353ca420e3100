// Hundreds of organisations from one CSV file: one room each, and a rerun makes none.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { startStack, suitesOnSynapse, waitFor, type Stack } from "../support/harness.ts";

// Synapse on the test machine's two shared cores makes about three rooms a second; 200 show the
// same (one room each under eight workers, none on a rerun) within the suite's time.
const COUNT = suitesOnSynapse() ? 200 : 500;

describe(`CSV import of ${COUNT} organisations`, () => {
  let stack: Stack;
  const csv = ["id,name,tags,clerks", ...Array.from({ length: COUNT }, (_, i) => `org-${String(i).padStart(4, "0")},Organisation ${i},${i % 2 ? "schools" : "municipalities"},clerk${i}@org${i}.example`)].join("\n");

  before(async () => {
    stack = await startStack({ name: "import", configure: (c) => ((c.workers as Record<string, unknown>).concurrency = 8) });
  });
  after(() => stack.stop());

  /** Rooms the homeserver holds: the fixture counts createRoom requests, Synapse lists them (admin API). */
  const roomsOnHomeserver = async (): Promise<number> => {
    if (stack.hs) return stack.hs.faults.requests("POST", /\/createRoom$/);
    const res = await fetch(`${stack.access.url}/_synapse/admin/v1/rooms?limit=1`, { headers: { authorization: `Bearer ${stack.access.adminToken}` } });
    assert.equal(res.status, 200);
    return ((await res.json()) as { total_rooms: number }).total_rooms;
  };

  const rooms = async () => {
    const res = await stack.api<{ organisations: { id: string; roomId: string | null; roomState: string }[] }>("GET", "/api/v1/organisations?limit=5000");
    return res.body.organisations;
  };

  it("creates every organisation and exactly one room for each", async () => {
    const res = await stack.api<{ summary: Record<string, number>; rows: { outcome: string }[] }>("POST", "/api/v1/organisations/import", csv, { contentType: "text/csv" });
    assert.equal(res.status, 200, JSON.stringify(res.body).slice(0, 500));
    assert.deepEqual(res.body.summary, { created: COUNT, updated: 0, unchanged: 0, error: 0 });
    let ready = 0;
    await waitFor(
      () => `${COUNT} rooms (${ready} ready)`,
      async () => (ready = (await rooms()).filter((o) => o.roomState === "ready").length) === COUNT,
      300_000,
      1000,
    );
    const list = await rooms();
    assert.equal(new Set(list.map((o) => o.roomId)).size, COUNT, "every organisation has its own room");
    assert.equal(await roomsOnHomeserver(), COUNT + 1, "one room per organisation on the homeserver (and the staff room)");
  });

  it("creates nothing on a rerun of the same file", async () => {
    const before = new Map((await rooms()).map((o) => [o.id, o.roomId]));
    const roomsBefore = await roomsOnHomeserver();
    const res = await stack.api<{ summary: Record<string, number> }>("POST", "/api/v1/organisations/import", csv, { contentType: "text/csv" });
    assert.deepEqual(res.body.summary, { created: 0, updated: 0, unchanged: COUNT, error: 0 });
    const after = new Map((await rooms()).map((o) => [o.id, o.roomId]));
    assert.deepEqual(after, before);
    assert.equal(await roomsOnHomeserver(), roomsBefore);
  });

  it("previews a file with bad rows without changing anything", async () => {
    const bad = "id,name,tags,clerks\norg-0000,Renamed,,\nNot A Slug,X,,\norg-9999,New,,\norg-9999,Twice,,\n";
    const res = await stack.api<{ dryRun: boolean; rows: { line: number; valid: boolean; errcode?: string }[] }>("POST", "/api/v1/organisations/import?dryRun=true", bad, { contentType: "text/csv" });
    assert.equal(res.status, 200);
    assert.deepEqual(
      res.body.rows.map((r) => [r.line, r.valid]),
      [
        [2, true],
        [3, false],
        [4, true],
        [5, false],
      ],
    );
    const org = await stack.api<{ name: string }>("GET", "/api/v1/organisations/org-0000");
    assert.equal(org.body.name, "Organisation 0");
    assert.equal((await stack.api("GET", "/api/v1/organisations/org-9999")).status, 404);
  });
});
