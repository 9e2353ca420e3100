// The mail outbox against a real PostgreSQL (and the embedded PGlite) and a real SMTP server: combining, languages,
// deduplication, retries while the relay is down, giving up, escaping, and logs without
// addresses.
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, it } from "node:test";
import type { ParsedMail } from "mailparser";
import { verifyAuditLog, type AuditRow } from "../../appservice/audit/audit.ts";
import { parseConfig } from "../../appservice/config/load.ts";
import { openDatabase, type Database } from "../../appservice/db/database.ts";
import { migrate } from "../../appservice/db/migrate.ts";
import { configureLogging, pseudonym } from "../../appservice/log.ts";
// The kinds these tests send, worded by their domains.
import "../../appservice/circulars/mail.ts";
import "../../appservice/documents/mail.ts";
import { enqueueNotification, MailOutbox, type Notification, type OutboxRow } from "../../appservice/mail/outbox.ts";
import { freshDatabaseUrl } from "../support/database.ts";
import { freePort } from "../support/ports.ts";
import { startSmtp, type TestSmtp } from "../support/smtp.ts";

const ROOM = "!abc123:kuvert.example";
const LINK_BASE = "https://element.kuvert.example/#/room/";
const logLines: string[] = [];

for (const kind of ["postgres", "pglite"] as const)
  describe(`mail outbox on ${kind}`, () => {
    let db: Database;
    let smtp: TestSmtp;

    before(async () => {
      configureLogging({
        level: "debug",
        pseudonymKey: "test-key",
        destination: new Writable({
          write(chunk: Buffer, _enc, cb) {
            logLines.push(chunk.toString("utf8"));
            cb();
          },
        }),
      });
      db = await openDatabase({ url: await freshDatabaseUrl(kind), embeddedDir: "memory://", poolSize: 6 });
      assert.ok((await migrate(db)).includes(3));
      smtp = await startSmtp({ refuse: ["gone@musterstadt.example"] });
    });
    after(async () => {
      await smtp.stop();
      await db.close();
    });

    /** An outbox with its worker running, for one test; timing comes from configuration only. */
    async function running<T>(mail: { combineWindowSeconds?: number; maxAttempts?: number; port?: number }, fn: (outbox: MailOutbox) => Promise<T>): Promise<T> {
      const config = parseConfig({
        mail: {
          smtp: { host: smtp.host, port: mail.port ?? smtp.port },
          from: "Kuvert <kuvert@kuvert.example>",
          staffMailbox: "team@body.example",
          roomLinkBase: LINK_BASE,
          combineWindowSeconds: mail.combineWindowSeconds ?? 0,
          maxAttempts: mail.maxAttempts ?? 10,
        },
        workers: { pollMilliseconds: 50, leaseSeconds: 5, concurrency: 4 },
      });
      const outbox = new MailOutbox(db, config);
      const worker = outbox.worker();
      worker.start();
      try {
        return await fn(outbox);
      } finally {
        await worker.stop();
        outbox.close();
      }
    }

    const enqueue = (n: Notification) => db.transaction((tx) => enqueueNotification(tx, n));
    const rowsFor = async (to: string) => (await db.query<OutboxRow>("SELECT * FROM mail_outbox WHERE recipient = $1 ORDER BY id", [to])).rows;
    const auditFor = async (action: string, object: string) => (await db.query<AuditRow>("SELECT * FROM audit_log WHERE action = $1 AND object = $2 ORDER BY seq", [action, object])).rows;
    const messagesTo = (to: string) => smtp.messages.filter((m) => addresses(m).includes(to));
    async function until(what: string, check: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
      const end = Date.now() + timeoutMs;
      while (!(await check())) {
        if (Date.now() > end) assert.fail(`timed out waiting until ${what}`);
        await sleep(50);
      }
    }

    it("combines 20 documents for one organisation into one German e-mail per clerk, with the room link and no attachment", async () => {
      const clerks = ["anna@musterstadt.example", "bernd@musterstadt.example"];
      const before = smtp.messages.length;
      await running({ combineWindowSeconds: 2 }, async () => {
        const started = Date.now();
        for (let i = 1; i <= 20; i++) {
          // One transaction per document, as a bulk batch delivers them one after another.
          await db.transaction(async (tx) => {
            for (const to of clerks) {
              await enqueueNotification(tx, {
                kind: "document",
                to,
                organisationId: "musterstadt",
                organisationName: "Musterstadt",
                roomId: ROOM,
                items: [{ title: `Beitragsbescheid ${i}`, reference: `AZ-${i}`, kind: "Bescheid" }],
                dedupeKey: `document:${i}`,
              });
            }
          });
        }
        await smtp.waitForMessages(before + 2);
        assert.ok(Date.now() - started >= 1900, "the e-mails waited for the combine window");
        await sleep(1500);
      });
      assert.equal(smtp.messages.length, before + 2, "exactly one e-mail per clerk");

      for (const to of clerks) {
        const [mail] = messagesTo(to);
        assert.ok(mail);
        assert.deepEqual(addresses(mail), [to], "each e-mail names only its own recipient");
        assert.equal(mail.subject, "Neue Dokumente für Musterstadt");
        const text = mail.text ?? "";
        for (let i = 1; i <= 20; i++) assert.match(text, new RegExp(`Beitragsbescheid ${i} \\(Az\\. AZ-${i}\\)`));
        assert.match(text, /liegen 20 neue Dokumente/);
        assert.ok(text.includes(LINK_BASE + encodeURIComponent(ROOM)), "the text links into the room");
        assert.ok(String(mail.html).includes(`href="${LINK_BASE}${encodeURIComponent(ROOM)}"`), "the HTML links into the room");
        assert.equal(mail.attachments.length, 0, "nothing is attached");
        assert.equal(mail.headers.get("auto-submitted"), "auto-generated");
        assert.ok(!text.includes(clerks.find((c) => c !== to)!), "no other clerk's address");

        const rows = await rowsFor(to);
        assert.equal(rows.length, 20);
        const head = rows[0]!;
        assert.equal(head.state, "sent");
        assert.ok(rows.slice(1).every((r) => r.state === "combined" && r.combined_into === head.id && r.message_id === head.message_id));
        assert.equal(mail.messageId, head.message_id);
        const audited = await auditFor("mail.sent", to);
        assert.equal(audited.length, 1);
        assert.equal(audited[0]!.organisation_id, "musterstadt");
        assert.equal(audited[0]!.details.items, 20);
      }
      assert.deepEqual(await verifyAuditLog(db), { ok: true, rows: (await db.query("SELECT 1 FROM audit_log")).rows.length });
    });

    it("sends the same batch again with the same Message-ID when the row update was lost", async () => {
      const to = "anna@musterstadt.example";
      const first = messagesTo(to)[0]!;
      const before = smtp.messages.length;
      // As if Kuvert had died after the SMTP server accepted the e-mail and before it recorded that.
      await db.query("UPDATE mail_outbox SET state = 'pending', combined_into = NULL, sent_at = NULL, message_id = NULL, lease_until = NULL WHERE recipient = $1", [to]);
      await running({ combineWindowSeconds: 2 }, async () => {
        await smtp.waitForMessages(before + 1);
      });
      const again = smtp.messages[before]!;
      assert.equal(again.messageId, first.messageId, "a duplicate can be recognised by its Message-ID");
      assert.equal(again.text, first.text);
    });

    it("writes English when asked, and a circular says so", async () => {
      const to = "clerk@school.example";
      const before = smtp.messages.length;
      await running({}, async () => {
        await enqueue({ kind: "circular", to, organisationId: "school-a", organisationName: "School A", roomId: ROOM, language: "en", items: [{ title: "Holiday dates 2026" }] });
        await smtp.waitForMessages(before + 1);
      });
      const mail = messagesTo(to)[0]!;
      assert.equal(mail.subject, "New circular for School A");
      assert.match(mail.text ?? "", /a new circular is waiting for you:\n\n- Holiday dates 2026\n/);
      assert.match(mail.text ?? "", /documents are never sent by e-mail/);
      assert.equal(mail.attachments.length, 0);
    });

    it("sends a notification enqueued twice with the same dedupe key once", async () => {
      const to = "dora@musterstadt.example";
      const before = smtp.messages.length;
      const n: Notification = { kind: "document", to, organisationId: "musterstadt", organisationName: "Musterstadt", roomId: ROOM, items: [{ title: "Bescheid" }], dedupeKey: "upload:42" };
      await running({}, async () => {
        await enqueue(n);
        await enqueue(n); // a retried upload, a replayed transaction
        await smtp.waitForMessages(before + 1);
        await enqueue(n); // even after it was sent
        await sleep(600);
      });
      assert.equal(messagesTo(to).length, 1);
      assert.equal((await rowsFor(to)).length, 1);
      assert.equal(smtp.messages.length, before + 1);
    });

    it("keeps e-mails pending while the SMTP server is down and sends them when it is back", async () => {
      const to = "emil@musterstadt.example";
      const before = smtp.messages.length;
      await smtp.pause();
      try {
        await running({ maxAttempts: 10 }, async () => {
          await enqueue({ kind: "document", to, organisationId: "musterstadt", organisationName: "Musterstadt", roomId: ROOM, items: [{ title: "Bescheid" }] });
          await until("the first attempt failed", async () => ((await rowsFor(to))[0]?.last_error ?? null) !== null);
          const [row] = await rowsFor(to);
          assert.equal(row!.state, "pending");
          assert.match(row!.last_error!, /ECONNREFUSED|connect/i);
          assert.ok(row!.run_after.getTime() > Date.now() - 100, "the next attempt waits for a backoff");
          await smtp.resume();
          await smtp.waitForMessages(before + 1, 15_000);
          await until("the row is marked sent", async () => (await rowsFor(to))[0]!.state === "sent");
        });
      } finally {
        await smtp.resume().catch(() => undefined);
      }
      const [row] = await rowsFor(to);
      assert.equal(row!.last_error, null);
      assert.ok(row!.attempts >= 2);
    });

    it("gives up after mail.maxAttempts: dead, audited, onDead called", async () => {
      const to = "frida@musterstadt.example";
      const nowhere = await freePort(); // nothing listens there
      const dead: OutboxRow[] = [];
      await running({ maxAttempts: 3, port: nowhere }, async (outbox) => {
        outbox.onDead = async (row) => void dead.push(row);
        await enqueue({ kind: "document", to, organisationId: "musterstadt", organisationName: "Musterstadt", roomId: ROOM, items: [{ title: "Bescheid" }] });
        await until("the row is dead", async () => (await rowsFor(to))[0]?.state === "dead", 20_000);
      });
      const [row] = await rowsFor(to);
      assert.equal(row!.attempts, 3);
      assert.match(row!.last_error!, /ECONNREFUSED|connect/i);
      assert.equal(dead.length, 1);
      assert.equal(dead[0]!.id, row!.id);
      assert.equal(dead[0]!.state, "dead");
      const audited = await auditFor("mail.dead", to);
      assert.equal(audited.length, 1);
      assert.equal(audited[0]!.outcome, "failed");
      assert.equal(audited[0]!.details.attempts, 3);
    });

    it("gives up at once when the server refuses the recipient for good, and alerts staff until that works", async () => {
      const to = "gone@musterstadt.example";
      const dead: OutboxRow[] = [];
      await running({ maxAttempts: 10 }, async (outbox) => {
        outbox.onDead = async (row) => {
          dead.push(row);
          if (dead.length === 1) throw new Error("staff room unreachable");
        };
        await enqueue({ kind: "document", to, organisationId: "musterstadt", roomId: ROOM, items: [{ title: "Bescheid" }] });
        await until("the row is dead", async () => (await rowsFor(to))[0]?.state === "dead");
      });
      const [row] = await rowsFor(to);
      assert.equal(row!.attempts, 2, "given up on the first refusal; once more because alerting staff failed");
      assert.match(row!.last_error!, /550/);
      assert.doesNotMatch(row!.last_error!, /alerting staff failed/);
      assert.deepEqual(
        dead.map((d) => d.id),
        [row!.id, row!.id],
        "staff are alerted at least once",
      );
      assert.equal((await auditFor("mail.dead", to)).length, 1);
    });

    it("escapes the HTML: an organisation name with <script> arrives as text", async () => {
      const to = "hanna@evil.example";
      const before = smtp.messages.length;
      const name = `<script>alert("x")</script> & Söhne`;
      await running({}, async () => {
        await enqueue({ kind: "document", to, organisationId: "evil", organisationName: name, roomId: ROOM, items: [{ title: `<img src=x onerror=alert(1)>`, reference: `"><b>` }] });
        await smtp.waitForMessages(before + 1);
      });
      const mail = messagesTo(to)[0]!;
      const html = String(mail.html);
      assert.ok(!/<script/i.test(html) && !/<img/i.test(html) && !html.includes(`"><b>`), "nothing from outside is markup");
      assert.ok(html.includes("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; Söhne"));
      assert.ok(html.includes("&lt;img src=x onerror=alert(1)&gt;"));
      assert.equal(mail.subject, `Neues Dokument für ${name}`, "the subject is text, not markup");
    });

    it("sends alerts to the staff mailbox with a short reason", async () => {
      const to = "team@body.example";
      const before = smtp.messages.length;
      await running({}, async () => {
        await enqueue({ kind: "alert", to, organisationId: "musterstadt", organisationName: "Musterstadt", roomId: ROOM, items: [{ title: "Infizierte Datei verworfen" }] });
        await smtp.waitForMessages(before + 1);
      });
      const mail = messagesTo(to)[0]!;
      assert.equal(mail.subject, "Kuvert-Warnung: Infizierte Datei verworfen");
      assert.match(mail.text ?? "", /- Infizierte Datei verworfen\n\nOrganisation: Musterstadt/);
      assert.equal(mail.attachments.length, 0);
    });

    it("never logs an e-mail address in clear", () => {
      const log = logLines.join("");
      assert.ok(log.includes('"e-mail sent"'), "the test did capture the mail logs");
      assert.ok(log.includes(pseudonym("anna@musterstadt.example")), "people appear as pseudonyms");
      const found = log.match(/[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}/g) ?? [];
      assert.deepEqual(found, []);
    });
  });

function addresses(mail: ParsedMail): string[] {
  const to = Array.isArray(mail.to) ? mail.to : mail.to ? [mail.to] : [];
  return to.flatMap((a) => a.value.map((v) => v.address ?? ""));
}
