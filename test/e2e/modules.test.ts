// Modules switched off in the configuration say so when used, and the rest works on.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { startStack, waitFor, type Stack } from "../support/harness.ts";
import type { TestUser } from "../support/matrix.ts";

const pdf = Buffer.from("%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Count 0/Kids[]>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n", "latin1");

describe("modules switched off", () => {
  let stack: Stack;
  let clerk: TestUser;
  let roomId: string;

  before(async () => {
    stack = await startStack({ name: "modules", configure: (c) => (c.modules = { inboundScanning: false, batches: false }) });
    clerk = await stack.user("clerk");
    await clerk.start();
    assert.equal((await stack.api("POST", "/api/v1/organisations", { id: "musterstadt", name: "Musterstadt", clerks: [{ matrixId: clerk.userId }] })).status, 201);
    roomId = await stack.roomOf("musterstadt");
    await clerk.waitForInvite(roomId);
    await clerk.join(roomId);
  });
  after(() => stack.stop());

  it("refuses bulk batches with a sentence that says why", async () => {
    const res = await stack.api("POST", "/api/v1/batches", pdf, { contentType: "application/zip" });
    assert.equal(res.status, 403);
    assert.equal(res.body.errcode, "KUVERT_MODULE_DISABLED");
    assert.match(String(res.body.error), /switched off.*modules\.batches/);
  });

  it("tells the room that posted files are not checked, and records no document", async () => {
    const upload = await clerk.client.uploadContent(new Uint8Array(pdf), { name: "a.pdf", type: "application/pdf" });
    const sent = await clerk.client.sendMessage(roomId, { msgtype: "m.file", body: "a.pdf", url: upload.content_uri } as never);
    await clerk.waitForEvent(roomId, "the note that files are not checked", (e) => e.getSender() === stack.botUserId && /nicht auf Viren/.test(String(e.getContent().body)));
    assert.equal((await stack.kuvert!.db.query("SELECT 1 FROM documents WHERE room_event_id = $1", [sent.event_id])).rowCount, 0);
  });

  it("still delivers documents through the drop API", async () => {
    const res = await stack.api<{ id: string }>("POST", "/api/v1/organisations/musterstadt/documents?filename=a.pdf", pdf, { contentType: "application/pdf" });
    assert.equal(res.status, 202);
    await waitFor("delivery", async () => (await stack.api<{ state: string }>("GET", `/api/v1/documents/${res.body.id}`)).body.state === "delivered");
  });
});
