// Archives and an unsafe clamd, end to end through the drop API: what clamd alone passed
// (EICAR in a password-protected ZIP, in a ZIP64 archive) is refused with a code, an ordinary
// ZIP is delivered, and with a clamd that lacks AlertEncrypted Kuvert is not ready, holds
// documents and tells staff once. Observed through the API and a Matrix client only.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { MatrixEvent } from "matrix-js-sdk";
import yazl from "yazl";
import { createToken } from "../../appservice/tokens/tokens.ts";
import { smallZip } from "../../appservice/scanning/zipwriter.ts";
import { EICAR } from "../support/clamd.ts";
import { startStack, waitFor } from "../support/harness.ts";

interface DocumentStatus {
  id: string;
  state: string;
  reason: string | null;
  signature: string | null;
  errcode: string | null;
}

function zip64(name: string, content: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const zip = new yazl.ZipFile();
    zip.addBuffer(content, name, { compress: true, forceZip64Format: true });
    zip.end({ forceZip64Format: true, comment: "" });
    const parts: Buffer[] = [];
    zip.outputStream.on("data", (d: Buffer) => parts.push(d));
    zip.outputStream.on("end", () => resolve(Buffer.concat(parts)));
    zip.outputStream.on("error", reject);
  });
}

async function setUp(name: string, opts: Parameters<typeof startStack>[0]["clamd"] = undefined) {
  const stack = await startStack({ name, clamd: opts });
  const clerk = await stack.user("clerk");
  await clerk.start();
  assert.equal((await stack.api("POST", "/api/v1/organisations", { id: "musterstadt", name: "Gemeinde Musterstadt", clerks: [{ matrixId: clerk.userId, email: "anna@musterstadt.example" }] })).status, 201);
  const room = await stack.roomOf("musterstadt");
  await clerk.waitForInvite(room);
  await clerk.join(room);
  const token = await createToken(stack.kuvert!.db, "levy-system", ["drop"], "test", ["musterstadt"]);
  const drop = async (body: Buffer, filename: string) => {
    const res = await fetch(`${stack.publicUrl}/api/v1/organisations/musterstadt/documents?${new URLSearchParams({ filename })}`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/octet-stream" },
      body: new Uint8Array(body),
    });
    assert.equal(res.status, 202);
    return ((await res.json()) as DocumentStatus).id;
  };
  const until = async (id: string, states: string[]) => {
    let last: DocumentStatus | undefined;
    await waitFor(
      `document ${id} to reach ${states.join(" or ")}`,
      async () => {
        last = (await stack.api<DocumentStatus>("GET", `/api/v1/documents/${id}`)).body;
        return states.includes(last.state);
      },
      60_000,
    );
    return last!;
  };
  const files = () => clerk.timeline(room).filter((e: MatrixEvent) => e.getContent().msgtype === "m.file");
  return { stack, clerk, room, drop, until, files };
}

describe("archives through the drop API", () => {
  let s: Awaited<ReturnType<typeof setUp>>;
  before(async () => {
    s = await setUp("archives");
  });
  after(() => s?.stack.stop());

  it("refuses EICAR in a password-protected ZIP with KUVERT_UNSCANNABLE and a sentence", async () => {
    const id = await s.drop(smallZip([{ name: "eicar.com", content: EICAR }], { password: "geheim" }), "vertraulich.zip");
    const doc = await s.until(id, ["rejected", "delivered"]);
    assert.equal(doc.state, "rejected");
    assert.equal(doc.errcode, "KUVERT_UNSCANNABLE");
    assert.match(doc.reason ?? "", /Passwort/);
  });

  it("finds EICAR in a ZIP64 archive: KUVERT_INFECTED", async () => {
    const id = await s.drop(await zip64("eicar.com", EICAR), "zip64.zip");
    const doc = await s.until(id, ["rejected", "delivered"]);
    assert.equal(doc.state, "rejected");
    assert.equal(doc.errcode, "KUVERT_INFECTED");
    assert.match(doc.signature ?? "", /Eicar/);
  });

  it("delivers an ordinary ZIP, and nothing refused reached the room", async () => {
    const id = await s.drop(await zip64("bescheid.txt", Buffer.from("Bescheid 2026\n".repeat(50))), "bescheid.zip");
    assert.equal((await s.until(id, ["rejected", "delivered"])).state, "delivered");
    await s.clerk.waitForEvent(s.room, "the delivered ZIP", (e) => e.getContent().body === "bescheid.zip");
    assert.deepEqual(
      s.files().map((e) => e.getContent().body),
      ["bescheid.zip"],
    );
  });
});

describe("a clamd missing AlertEncrypted", () => {
  let s: Awaited<ReturnType<typeof setUp>>;
  before(async () => {
    s = await setUp("archives-unsafe-clamd", { settings: { AlertEncrypted: null } });
  });
  after(() => s?.stack.stop());

  it("makes Kuvert not ready, holds documents and tells staff why, once", async () => {
    const ready = await fetch(`http://127.0.0.1:${s.stack.config.appservice.listener.port}/readyz`);
    assert.equal(ready.status, 503);
    assert.match(JSON.stringify(await ready.json()), /AlertEncrypted/);
    const first = await s.drop(Buffer.from("Bescheid\n"), "bescheid.txt");
    const held = await s.until(first, ["held", "delivered"]);
    assert.equal(held.state, "held");
    assert.match(held.reason ?? "", /Schadsoftware durchlassen/);
    const second = await s.drop(Buffer.from("Noch ein Bescheid\n"), "bescheid2.txt");
    assert.equal((await s.until(second, ["held", "delivered"])).state, "held");

    const { stack } = s;
    await stack.staff.start();
    const staffRoomId = stack.kuvert!.services.staffRoom.roomId!;
    await stack.staff.waitForInvite(staffRoomId);
    await stack.staff.join(staffRoomId);
    await stack.staff.waitForEvent(staffRoomId, "the alert about the scanner", (e) => /AlertEncrypted/.test(String(e.getContent().body)));
    await waitFor("the staff mailbox alert", () => stack.smtp.messages.some((m) => /AlertEncrypted/.test(m.text ?? "")));
    await fetch(`http://127.0.0.1:${stack.config.appservice.listener.port}/readyz`);
    await new Promise((r) => setTimeout(r, 2_000));
    const alerts = stack.staff.timeline(staffRoomId).filter((e: MatrixEvent) => /AlertEncrypted/.test(String(e.getContent().body)));
    assert.equal(alerts.length, 1, "staff are told once");
    assert.equal(stack.smtp.messages.filter((m) => /AlertEncrypted/.test(m.text ?? "")).length, 1, "one e-mail");
    assert.equal(s.files().length, 0, "nothing was delivered");
  });
});
