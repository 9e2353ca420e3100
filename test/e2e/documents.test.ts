// Documents for organisations, end to end: a real clamd, a real SMTP server, clerks in
// matrix-js-sdk clients. Nothing unscanned is delivered; nothing is delivered twice or to
// the wrong organisation.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { MatrixEvent } from "matrix-js-sdk";
import { AUDIT_LOCK } from "../../appservice/audit/audit.ts";
import { createToken } from "../../appservice/tokens/tokens.ts";
import { EICAR, zipContaining } from "../support/clamd.ts";
import { artifactsDir, startStack, waitFor, type Stack } from "../support/harness.ts";
import type { TestUser } from "../support/matrix.ts";
import { pdf } from "../support/files.ts";

/** A small, valid PDF (so content sniffing says application/pdf). */

interface DocumentStatus {
  id: string;
  state: string;
  reason: string | null;
  signature: string | null;
  eventId: string | null;
  replayed?: boolean;
  errcode?: string;
  error?: string;
}

describe("documents for organisations", () => {
  let stack: Stack;
  let clerkA: TestUser;
  let clerkB: TestUser;
  let roomA: string;
  let roomB: string;
  let dropToken: string;

  const drop = (org: string, body: Buffer | string, query: Record<string, string>, headers: Record<string, string> = {}, token = dropToken) =>
    fetch(`${stack.publicUrl}/api/v1/organisations/${org}/documents?${new URLSearchParams(query)}`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/octet-stream", ...headers },
      body: typeof body === "string" ? body : new Uint8Array(body),
    }).then(async (res) => ({ status: res.status, body: (await res.json()) as DocumentStatus }));

  const status = async (id: string) => (await stack.api<DocumentStatus>("GET", `/api/v1/documents/${id}`)).body;
  const until = async (id: string, states: string[], timeoutMs = 30_000) => {
    let last: DocumentStatus | undefined;
    await waitFor(
      `document ${id} to reach ${states.join(" or ")} (last: ${last?.state})`,
      async () => {
        last = await status(id);
        return states.includes(last.state);
      },
      timeoutMs,
    );
    return last!;
  };
  const stagingFiles = () => readdirSync(stack.config.documents.stagingDir);
  /** How Kuvert recorded the clean verdict on a document: scanned while it arrived, or afterwards from staging. */
  const scannedWhileReceiving = async (id: string) => {
    const rows = (await stack.kuvert!.db.query<{ details: { whileReceiving: boolean } }>("SELECT details FROM audit_log WHERE action = 'document.scanned' AND object = $1", [id])).rows;
    assert.equal(rows.length, 1, "one clean verdict recorded");
    return rows[0]!.details.whileReceiving;
  };
  const fileEvents = (user: TestUser, roomId: string) => user.timeline(roomId).filter((e: MatrixEvent) => e.getContent().msgtype === "m.file");

  before(async () => {
    stack = await startStack({ name: "documents" });
    clerkA = await stack.user("clerk-a");
    clerkB = await stack.user("clerk-b");
    await Promise.all([clerkA.start(), clerkB.start()]);
    for (const [id, clerk, email] of [
      ["musterstadt", clerkA, "anna@musterstadt.example"],
      ["schule-b", clerkB, "bernd@schule-b.example"],
    ] as const) {
      const res = await stack.api("POST", "/api/v1/organisations", { id, name: id === "musterstadt" ? "Gemeinde Musterstadt" : "Schule B", clerks: [{ matrixId: clerk.userId, email }] });
      assert.equal(res.status, 201);
    }
    roomA = await stack.roomOf("musterstadt");
    roomB = await stack.roomOf("schule-b");
    await clerkA.waitForInvite(roomA);
    await clerkA.join(roomA);
    await clerkB.waitForInvite(roomB);
    await clerkB.join(roomB);
    dropToken = await createToken(stack.kuvert!.db, "levy-system", ["drop"], "test", ["musterstadt", "schule-b"]);
  });
  after(() => stack.stop());

  it("delivers a clean PDF as a file event and e-mails each clerk a link, not the document", async () => {
    const content = pdf("Beitragsbescheid 2026");
    const res = await drop("musterstadt", content, { filename: "Beitragsbescheid 2026.pdf", kind: "Beitragsbescheid", reference: "AZ-2026-17" }, { "idempotency-key": "levy-17" });
    assert.equal(res.status, 202, JSON.stringify(res.body));
    assert.equal(res.body.replayed, false);
    const delivered = await until(res.body.id, ["delivered"]);
    assert.equal(await scannedWhileReceiving(res.body.id), true, "scanned while the upload was staged");
    const file = await clerkA.waitForEvent(roomA, "the file event", (e) => e.getId() === delivered.eventId);
    assert.equal(file.getSender(), stack.botUserId);
    const c = file.getContent() as { body: string; filename: string; url: string; info: { mimetype: string; size: number } };
    assert.equal(c.body, "Beitragsbescheid 2026.pdf");
    assert.equal(c.filename, "Beitragsbescheid 2026.pdf");
    assert.equal(c.info.mimetype, "application/pdf");
    assert.equal(c.info.size, content.length);
    assert.match(c.url, /^mxc:\/\//);
    const downloaded = await clerkA.download(c.url);
    assert.equal(downloaded.status, 200);
    assert.deepEqual(downloaded.body, content);
    const text = clerkA.timeline(roomA).find((e) => e.getSender() === stack.botUserId && /Beitragsbescheid · Aktenzeichen AZ-2026-17 · von levy-system/.test(String(e.getContent().body)));
    assert.ok(text, "a short text says kind, reference and sender");

    const [mail] = await stack.smtp.waitForMessages(1, 20_000);
    assert.equal(mail!.to && "text" in mail!.to ? mail!.to.text : "", "anna@musterstadt.example");
    assert.ok(mail!.text?.includes(encodeURIComponent(roomA)), "the e-mail links into the room");
    assert.equal(mail!.attachments.length, 0);
    assert.ok(!mail!.text?.includes("Beitragsbescheid 2026\n"), "no document content");
    assert.deepEqual(stagingFiles(), [], "the staging copy is gone after delivery");
  });

  it("answers a retried upload with the first result and refuses the key for other content", async () => {
    const again = await drop("musterstadt", pdf("Beitragsbescheid 2026"), { filename: "Beitragsbescheid 2026.pdf", kind: "Beitragsbescheid", reference: "AZ-2026-17" }, { "idempotency-key": "levy-17" });
    assert.equal(again.status, 202);
    assert.equal(again.body.replayed, true);
    assert.equal(again.body.state, "delivered");
    const other = await drop("musterstadt", pdf("something else"), { filename: "x.pdf" }, { "idempotency-key": "levy-17" });
    assert.equal(other.status, 422);
    assert.equal(other.body.errcode, "KUVERT_IDEMPOTENCY_KEY_REUSED");
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(fileEvents(clerkA, roomA).length, 1, "one file event, however often it was sent");
    assert.deepEqual(stagingFiles(), []);
  });

  it("rejects EICAR, alone and inside a ZIP: destroyed, never delivered, staff alerted", async () => {
    const plain = await drop("musterstadt", EICAR, { filename: "eicar.txt" });
    const zipped = await drop("musterstadt", zipContaining("inner/eicar.com", EICAR), { filename: "archive.zip" });
    assert.equal(plain.status, 202);
    assert.equal(zipped.status, 202);
    for (const id of [plain.body.id, zipped.body.id]) {
      const rejected = await until(id, ["rejected"]);
      assert.match(rejected.signature ?? "", /Eicar/i);
      assert.match(rejected.reason ?? "", /Schadsoftware/);
      assert.equal(rejected.eventId, null);
    }
    assert.deepEqual(stagingFiles(), [], "infected files are destroyed, not moved aside");
    await stack.staff.start();
    const staffRoomId = stack.kuvert!.services.staffRoom.roomId!;
    await stack.staff.waitForInvite(staffRoomId);
    await stack.staff.join(staffRoomId);
    await stack.staff.waitForEvent(staffRoomId, "the alert about eicar.txt", (e) => /eicar\.txt.*Eicar/i.test(String(e.getContent().body)));
    await waitFor("the staff mailbox alert", () => stack.smtp.messages.some((m) => m.to && "text" in m.to && m.to.text === "staff@body.example" && /eicar/i.test(m.text ?? "")));
    assert.equal(fileEvents(clerkA, roomA).length, 1, "nothing new in the room");
  });

  it("holds documents while the scanner is down and delivers them when it is back", async () => {
    await stack.clamd.pause();
    try {
      const res = await drop("musterstadt", pdf("while clamd is down"), { filename: "held.pdf" });
      assert.equal(res.status, 202);
      const held = await until(res.body.id, ["held"]);
      assert.match(held.reason ?? "", /Virenscanner ist nicht erreichbar/);
      const ready = await stack.api("GET", "/readyz", undefined, { token: null });
      assert.equal(ready.status, 503, "not ready while the scanner is down");
      await new Promise((r) => setTimeout(r, 1500));
      assert.equal((await status(res.body.id)).state, "held", "still held: nothing unscanned is delivered");
      await stack.clamd.resume();
      await until(res.body.id, ["delivered"], 60_000);
      assert.equal(await scannedWhileReceiving(res.body.id), false, "scanned from staging once clamd was back");
    } finally {
      await stack.clamd.resume().catch(() => undefined);
    }
  });

  it("refuses bad input with a reason and leaves nothing behind", async () => {
    const exe = Buffer.concat([Buffer.from("MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff", "latin1"), Buffer.alloc(200)]);
    const cases: [string, Promise<{ status: number; body: DocumentStatus }>, number, string][] = [
      ["an empty file", drop("musterstadt", Buffer.alloc(0), { filename: "empty.pdf" }), 400, "KUVERT_EMPTY_FILE"],
      ["a path in the name", drop("musterstadt", pdf("x"), { filename: "../../etc/passwd" }), 400, "KUVERT_INVALID_FILENAME"],
      ["a text-direction override", drop("musterstadt", pdf("x"), { filename: "rechnung\u202Efdp.exe" }), 400, "KUVERT_INVALID_FILENAME"],
      ["no name", drop("musterstadt", pdf("x"), {}), 400, "KUVERT_INVALID_FILENAME"],
      ["a program", drop("musterstadt", exe, { filename: "invoice.pdf" }), 415, "KUVERT_TYPE_NOT_ALLOWED"],
      ["an unknown organisation", drop("nobody", pdf("x"), { filename: "a.pdf" }, {}, stack.adminToken), 404, "KUVERT_NOT_FOUND"],
      ["an organisation outside the token's scope", drop("other-org", pdf("x"), { filename: "a.pdf" }), 403, "KUVERT_ORGANISATION_OUT_OF_SCOPE"],
      ["a wrong token", drop("musterstadt", pdf("x"), { filename: "a.pdf" }, {}, "kvt_wrong"), 401, "KUVERT_UNAUTHORIZED"],
    ];
    for (const [what, request, code, errcode] of cases) {
      const res = await request;
      assert.equal(res.status, code, `${what}: ${JSON.stringify(res.body)}`);
      assert.equal(res.body.errcode, errcode, what);
      assert.ok(res.body.error && res.body.error.length > 10, `${what} comes with a reason`);
    }
    assert.equal((await stack.api("POST", "/api/v1/organisations", { id: "archived-org", name: "Archived" })).status, 201);
    assert.equal((await stack.api("POST", "/api/v1/organisations/archived-org/archive")).status, 200);
    const archived = await drop("archived-org", pdf("x"), { filename: "a.pdf" }, {}, stack.adminToken);
    assert.equal(archived.status, 409);
    assert.deepEqual(stagingFiles(), []);
  });

  it("never shows organisation B's document to organisation A's clerk", async () => {
    const res = await drop("schule-b", pdf("for Schule B only"), { filename: "Zeugnisliste.pdf" });
    const delivered = await until(res.body.id, ["delivered"]);
    await clerkB.waitForEvent(roomB, "B's document in B's room", (e) => e.getId() === delivered.eventId);
    const everywhereA = clerkA.client.getRooms().flatMap((room) => room.getLiveTimeline().getEvents());
    assert.equal(
      everywhereA.some((e) => e.getId() === delivered.eventId || e.getContent().filename === "Zeugnisliste.pdf"),
      false,
    );
  });

  it("removes an infected file a clerk uploads: redacted, quarantined, the room told", async () => {
    const upload = await clerkA.client.uploadContent(new Uint8Array(EICAR), { name: "scan.txt", type: "text/plain" });
    const sent = await clerkA.client.sendMessage(roomA, { msgtype: "m.file", body: "scan.txt", filename: "scan.txt", url: upload.content_uri, info: { mimetype: "text/plain", size: EICAR.length } } as never);
    await clerkA.until("the upload to be redacted", () => clerkA.room(roomA)?.findEventById(sent.event_id)?.isRedacted() === true, 30_000);
    await clerkA.waitForEvent(roomA, "the explanation", (e) => e.getSender() === stack.botUserId && /scan\.txt.*entfernt/.test(String(e.getContent().body)));
    const media = await clerkA.download(upload.content_uri);
    assert.equal(media.status, 404, "the media is quarantined");
  });

  it("marks a clean upload as checked and tells the staff mailbox", async () => {
    const before = stack.smtp.messages.length;
    const upload = await clerkA.client.uploadContent(new Uint8Array(pdf("Antrag")), { name: "Antrag.pdf", type: "application/pdf" });
    const sent = await clerkA.client.sendMessage(roomA, { msgtype: "m.file", body: "Antrag.pdf", url: upload.content_uri, info: { mimetype: "application/pdf", size: 10 } } as never);
    const reaction = await clerkA.waitForEvent(roomA, "the checked mark", (e) => e.getType() === "m.reaction" && e.getContent()["m.relates_to"]?.event_id === sent.event_id, 30_000);
    assert.equal(reaction.getSender(), stack.botUserId);
    await waitFor("the staff mailbox e-mail", () => stack.smtp.messages.slice(before).some((m) => m.to && "text" in m.to && m.to.text === "staff@body.example" && /Gemeinde Musterstadt/.test(m.text ?? "")));
  });

  it("records a burst's deliveries together, each once, with its e-mail and its work done (test homeserver: room events held)", async () => {
    const hold = stack.fixture.faults.hold("PUT", /\/rooms\/[^/]+\/send\/m\.room\.message\/kuvert\./);
    let ids: string[];
    try {
      const answers = await Promise.all([0, 1, 2, 3].map((i) => drop("musterstadt", pdf(`Bescheid ${i} des Bündels`), { filename: `buendel-${i}.pdf`, kind: "Bescheid" })));
      assert.deepEqual(
        answers.map((a) => a.status),
        [202, 202, 202, 202],
      );
      ids = answers.map((a) => a.body.id);
      // Recorded (with the others that ended about then) by the time the answers are here; that no
      // answer comes before its record is committed, the next test shows.
      const rows = await stack.kuvert!.db.query<{ id: string }>("SELECT id FROM documents WHERE id = ANY($1)", [ids]);
      assert.equal(rows.rowCount, 4, "every accepted document is in the database when its 202 comes");
      // All four in hand (workers.concurrency 4), each waiting for its first event.
      await hold.waitForHeld(4, 20_000);
    } finally {
      hold.release();
    }
    for (const id of ids) await until(id, ["delivered"]);
    const delivered = await stack.kuvert!.db.query<{ object: string; at: Date }>("SELECT object, at FROM audit_log WHERE action = 'document.delivered' AND object = ANY($1)", [ids]);
    assert.deepEqual(delivered.rows.map((r) => r.object).sort(), [...ids].sort(), "one delivery row per document");
    const transactions = new Set(delivered.rows.map((r) => r.at.toISOString())).size;
    assert.ok(transactions < ids.length, `four deliveries ending together recorded in fewer transactions (${transactions})`);
    const mails = await stack.kuvert!.db.query<{ dedupe_key: string }>("SELECT dedupe_key FROM mail_outbox WHERE dedupe_key = ANY($1)", [ids.map((id) => `document:${id}:anna@musterstadt.example`)]);
    assert.equal(mails.rowCount, 4, "one e-mail notification per document for its clerk");
    const work = await stack.kuvert!.db.query<{ state: string }>("SELECT state FROM document_work WHERE document_id = ANY($1)", [ids]);
    assert.deepEqual(
      work.rows.map((r) => r.state),
      ["done", "done", "done", "done"],
    );
  });

  it("answers an upload's 202 only once it is recorded: none while its record cannot be committed", async () => {
    // The audit chain's lock, held here: the upload's transaction waits for it before it commits.
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    let locked!: () => void;
    const lockTaken = new Promise<void>((resolve) => (locked = resolve));
    const holding = stack.kuvert!.db.transaction(async (tx) => {
      await tx.query("SELECT pg_advisory_xact_lock($1)", [AUDIT_LOCK]);
      locked();
      await released;
    });
    let answered = false;
    let upload: ReturnType<typeof drop> | undefined;
    try {
      await lockTaken;
      upload = drop("musterstadt", pdf("Bescheid, aufgenommen erst nach dem Protokoll"), { filename: "protokoll.pdf", kind: "Bescheid" }).then((a) => {
        answered = true;
        return a;
      });
      await waitFor("the upload's record to wait for the audit chain", async () => {
        // A bigint advisory key under 2³² shows as classid 0, objid the key, objsubid 1.
        const { rows } = await stack.kuvert!.db.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND classid = 0 AND objid = $1 AND objsubid = 1", [AUDIT_LOCK]);
        return rows[0]!.n > 0;
      });
      assert.equal(answered, false, "no 202 while the record is not committed");
    } finally {
      release();
      await holding;
    }
    const answer = await upload!;
    assert.equal(answer.status, 202);
    const rows = await stack.kuvert!.db.query("SELECT 1 FROM documents WHERE id = $1", [answer.body.id]);
    assert.equal(rows.rowCount, 1);
    await until(answer.body.id, ["delivered"]);
  });

  it("kept people and secrets out of its logs through all of the above", () => {
    const log = readFileSync(join(artifactsDir, "logs", "documents.log"), "utf8");
    assert.ok(log.split("\n").length > 10, "the log has content to check");
    for (const secret of [clerkA.userId, clerkB.userId, stack.staff.userId, "anna@musterstadt.example", "bernd@schule-b.example", "staff@body.example", dropToken, stack.adminToken, stack.registration.as_token, stack.registration.hs_token]) {
      assert.equal(log.includes(secret), false, `the log contains ${secret.slice(0, 12)}…`);
    }
    assert.doesNotMatch(log, /@[a-z0-9._=-]+:kuvert\.test/, "no Matrix ID of anyone");
    assert.match(log, /"p:[A-Za-z0-9_-]{16}"/, "people appear as pseudonyms");
  });
});
