// Hundreds of organisations from one CSV file: one room each, and a rerun makes none.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { startStack, waitFor, type Stack } from "../support/harness.ts";

const COUNT = 500;

describe(`CSV import of ${COUNT} organisations`, () => {
  let stack: Stack;
  const csv = ["id,name,tags,clerks", ...Array.from({ length: COUNT }, (_, i) => `org-${String(i).padStart(4, "0")},Organisation ${i},${i % 2 ? "schools" : "municipalities"},clerk${i}@org${i}.example`)].join("\n");

  before(async () => {
    stack = await startStack({ name: "import", configure: (c) => ((c.workers as Record<string, unknown>).concurrency = 8) });
  });
  after(() => stack.stop());

  const rooms = async () => {
    const res = await stack.api<{ organisations: { id: string; roomId: string | null; roomState: string }[] }>("GET", "/api/v1/organisations?limit=5000");
    return res.body.organisations;
  };

  it("creates every organisation and exactly one room for each", async () => {
    const res = await stack.api<{ summary: Record<string, number>; rows: { outcome: string }[] }>("POST", "/api/v1/organisations/import", csv, { contentType: "text/csv" });
    assert.equal(res.status, 200, JSON.stringify(res.body).slice(0, 500));
    assert.deepEqual(res.body.summary, { created: COUNT, updated: 0, unchanged: 0, error: 0 });
    await waitFor(`${COUNT} rooms`, async () => (await rooms()).filter((o) => o.roomState === "ready").length === COUNT, 300_000, 1000);
    const list = await rooms();
    assert.equal(new Set(list.map((o) => o.roomId)).size, COUNT, "every organisation has its own room");
    if (stack.hs) assert.equal(stack.hs.faults.requests("POST", /\/createRoom$/), COUNT + 1, "one createRoom per organisation (and one for the staff room)");
  });

  it("creates nothing on a rerun of the same file", async () => {
    const before = new Map((await rooms()).map((o) => [o.id, o.roomId]));
    const createsBefore = stack.hs?.faults.requests("POST", /\/createRoom$/);
    const res = await stack.api<{ summary: Record<string, number> }>("POST", "/api/v1/organisations/import", csv, { contentType: "text/csv" });
    assert.deepEqual(res.body.summary, { created: 0, updated: 0, unchanged: COUNT, error: 0 });
    const after = new Map((await rooms()).map((o) => [o.id, o.roomId]));
    assert.deepEqual(after, before);
    if (stack.hs) assert.equal(stack.hs.faults.requests("POST", /\/createRoom$/), createsBefore);
  });

  it("previews a file with bad rows without changing anything", async () => {
    const bad = "id,name,tags,clerks\norg-0000,Renamed,,\nNot A Slug,X,,\norg-9999,New,,\norg-9999,Twice,,\n";
    const res = await stack.api<{ dryRun: boolean; rows: { line: number; valid: boolean; errcode?: string }[] }>("POST", "/api/v1/organisations/import?dryRun=true", bad, { contentType: "text/csv" });
    assert.equal(res.status, 200);
    assert.deepEqual(res.body.rows.map((r) => [r.line, r.valid]), [[2, true], [3, false], [4, true], [5, false]]);
    const org = await stack.api<{ name: string }>("GET", "/api/v1/organisations/org-0000");
    assert.equal(org.body.name, "Organisation 0");
    assert.equal((await stack.api("GET", "/api/v1/organisations/org-9999")).status, 404);
  });
});
