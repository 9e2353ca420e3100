// Data-subject requests on both databases: the report lists what Kuvert holds about one person
// (and nothing of another), erasure changes exactly what it says, the audit chain stays intact.
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import { audit, verifyAuditLog, type AuditRow } from "../../appservice/audit/audit.ts";
import { eraseSubject, formatReport, OTHER_PERSON, subjectReport, type ErasureResult, type SubjectReport } from "../../appservice/audit/subject.ts";
import { openDatabase, type Database } from "../../appservice/db/database.ts";
import { migrate } from "../../appservice/db/migrate.ts";
import { KuvertError } from "../../appservice/errors.ts";
import { pseudonym } from "../../appservice/log.ts";
import { Organisations } from "../../appservice/organisations/service.ts";
import { freshDatabaseUrl } from "../support/database.ts";
import { tempDir } from "../support/tmp.ts";

const ANNA = "@anna:ex.org";
const ANNA_MAIL = "anna@example.org";
const BOB = "@bob:ex.org";
const DPO = "@dpo:ex.org";

type Snapshot = Record<string, Record<string, unknown>[]>;
const tables: [string, string][] = [
  ["organisations", "id"],
  ["clerks", "id"],
  ["staff_members", "matrix_id"],
  ["room_sync", "organisation_id"],
  ["documents", "id"],
  ["mail_outbox", "id"],
  ["calls", "id"],
  ["guest_links", "id"],
  ["inbound_events", "seq"],
  ["audit_log", "seq"],
];

function count(result: ErasureResult["erased"] | ErasureResult["kept"], startsWith: string): number {
  const entry = result.find((e) => e.what.startsWith(startsWith));
  assert.ok(entry, `an entry "${startsWith}…"`);
  return entry.count;
}

function sectionRows(report: SubjectReport, name: string): Record<string, unknown>[] {
  const section = report.sections.find((s) => s.name === name);
  assert.ok(section, `section ${name}`);
  assert.ok(section.description.length > 20, `section ${name} says what it is`);
  return section.rows;
}

for (const kind of ["postgres", "pglite"] as const) {
  describe(`data-subject report and erasure on ${kind}`, () => {
    let db: Database;
    let orgs: Organisations;
    const embeddedDir = tempDir("kuvert-pglite-");
    let annaClerkIds: string[] = [];
    let annaMailIds: string[] = [];
    let bobMailId = "";
    const annaEvents = ["$anna-msg", "$anna-join", "$anna-failed"];
    let matrixReport: SubjectReport;
    let mailReport: SubjectReport;

    async function snapshot(): Promise<Snapshot> {
      const out: Snapshot = {};
      for (const [table, key] of tables) out[table] = (await db.query<Record<string, unknown>>(`SELECT * FROM ${table} ORDER BY ${key}`)).rows;
      return out;
    }

    async function document(id: string, organisation: string, direction: string, submittedBy: string, state: string, createdAt?: string): Promise<void> {
      await db.query(
        `INSERT INTO documents (id, direction, organisation_id, source, submitted_by, filename, kind, size, state, created_at, finished_at)
         VALUES ($1, $2, $3, $4, $5, $6, 'Bescheid', 1234, $7, COALESCE($8::timestamptz, now()), CASE WHEN $7 IN ('delivered', 'checked') THEN now() END)`,
        [id, direction, organisation, direction === "inbound" ? "room" : "api", submittedBy, `${id}.pdf`, state, createdAt ?? null],
      );
    }

    async function mail(recipient: string, organisation: string, state: string, combinedInto: string | null = null): Promise<string> {
      const res = await db.query<{ id: string }>(
        `INSERT INTO mail_outbox (kind, recipient, batch_key, organisation_id, organisation_name, items, state, combined_into, sent_at)
         VALUES ('document', $1, $2, $3, $3, '[{"title":"Beitragsbescheid 2036"}]', $4, $5, CASE WHEN $4 = 'sent' THEN now() END) RETURNING id`,
        [recipient, `room|${organisation}|`, organisation, state, combinedInto],
      );
      return res.rows[0]!.id;
    }

    async function event(eventId: string, sender: string, type: string, state: string, stateKey?: string): Promise<void> {
      const body = { event_id: eventId, room_id: "!room-a:ex.org", type, sender, ...(stateKey ? { state_key: stateKey } : {}), content: { body: "private words" } };
      await db.query("INSERT INTO inbound_events (event_id, room_id, event_type, event, state) VALUES ($1, '!room-a:ex.org', $2, $3, $4)", [eventId, type, JSON.stringify(body), state]);
    }

    before(async () => {
      db = await openDatabase({ url: await freshDatabaseUrl(kind), embeddedDir, poolSize: 4 });
      await migrate(db);
      orgs = new Organisations(db);
      const anna = { matrixId: ANNA, email: "Anna@Example.org", name: "Anna Beispiel" };
      const bob = { matrixId: BOB, email: "bob@example.org", name: "Bob Muster" };
      await orgs.apply({ id: "org-a", name: "Gemeinde A", clerks: [anna, bob] }, "@admin:ex.org");
      await orgs.apply({ id: "org-b", name: "Gemeinde B", clerks: [anna, bob] }, "@admin:ex.org");
      await orgs.apply({ id: "org-c", name: "Gemeinde C", clerks: [bob] }, "@admin:ex.org");
      // Anna was staff once and was taken out of the configuration.
      await orgs.syncStaff([
        { userId: ANNA, roles: ["staff"] },
        { userId: "@sam:ex.org", roles: ["admin"] },
      ]);
      await orgs.syncStaff([{ userId: "@sam:ex.org", roles: ["admin"] }]);
      // What the room worker would have done: rooms in line, clerks joined.
      await db.query("UPDATE room_sync SET state = 'done'");
      await db.query("UPDATE clerks SET membership = 'join'");
      await db.query("UPDATE organisations SET room_problem = $1 WHERE id = 'org-b'", [`${ANNA} is banned from the room; only a person can lift the ban\n${BOB} could not be invited: M_FORBIDDEN`]);
      annaClerkIds = (await db.query<{ id: string }>("SELECT id FROM clerks WHERE matrix_id = $1 ORDER BY id", [ANNA])).rows.map((r) => r.id);

      await document("doc-anna-in", "org-a", "inbound", ANNA, "checked");
      await document("doc-bob-in", "org-a", "inbound", BOB, "checked");
      await document("doc-out-a", "org-a", "outbound", "token:backoffice", "delivered");
      await document("doc-out-b", "org-b", "outbound", "token:backoffice", "delivered");
      await document("doc-out-before", "org-a", "outbound", "token:backoffice", "delivered", "2001-01-01T00:00:00Z");
      await document("doc-out-c", "org-c", "outbound", "token:backoffice", "delivered");
      await document("doc-out-held", "org-a", "outbound", "token:backoffice", "held");

      const head = await mail(ANNA_MAIL, "org-a", "sent");
      annaMailIds = [head, await mail(ANNA_MAIL, "org-a", "combined", head), await mail("ANNA@example.org", "org-b", "pending")];
      bobMailId = await mail("bob@example.org", "org-a", "sent");
      // Anna's address was also invited as a guest to a video consultation, and Bob's.
      await db.query(
        `INSERT INTO calls (id, organisation_id, room_id, widget_id, conference_id, room_name, started_by, expires_at)
         VALUES ('call-a', 'org-a', '!room-a:ex.org', 'widget-a', 'conf', 'Gemeinde A', '@sam:ex.org', now() + interval '1 hour')`,
      );
      await db.query(
        `INSERT INTO guest_links (id, call_id, guest_name, email, created_by, expires_at) VALUES
           ('link-anna', 'call-a', 'Anna Beispiel', 'anna@example.org', 'token:staff', now() + interval '1 hour'),
           ('link-bob', 'call-a', 'Bob Muster', 'bob@example.org', 'token:staff', now() + interval '1 hour')`,
      );

      await event("$anna-msg", ANNA, "m.room.message", "done");
      await event("$anna-join", ANNA, "m.room.member", "done", ANNA);
      await event("$anna-failed", ANNA, "m.room.message", "failed");
      await event("$bob-msg", BOB, "m.room.message", "done");

      await db.transaction(async (tx) => {
        await audit(tx, { actor: ANNA, action: "document.uploaded", organisationId: "org-a", object: "doc-anna-in", outcome: "ok" });
        await audit(tx, { actor: "kuvert", action: "inbound.checked", organisationId: "org-a", object: "doc-anna-in", outcome: "ok", details: { eventId: "$anna-msg", sender: ANNA } });
        await audit(tx, { actor: "kuvert", action: "mail.sent", outcome: "ok", details: { to: ["Anna@Example.org"], count: 2 } });
        await audit(tx, { actor: "kuvert", action: "test.lookalike", outcome: "ok", details: { note: `${ANNA}x`, other: "@annabelle:ex.org" } });
        await audit(tx, { actor: BOB, action: "document.uploaded", organisationId: "org-a", object: "doc-bob-in", outcome: "ok" });
      });
    });
    after(async () => {
      await db.close();
      rmSync(embeddedDir, { recursive: true, force: true });
    });

    it("refuses to erase an active clerk, naming the organisations, and changes nothing", async () => {
      const before = await snapshot();
      await assert.rejects(eraseSubject(db, ANNA, DPO, pseudonym), (err: unknown) => {
        assert.ok(err instanceof KuvertError);
        assert.equal(err.errcode, "KUVERT_SUBJECT_STILL_ACTIVE");
        assert.match(err.message, /active clerk of organisations org-a, org-b: remove the clerk/);
        return true;
      });
      await assert.rejects(eraseSubject(db, "Anna@Example.org", DPO, pseudonym), /active clerk/);
      assert.deepEqual(await snapshot(), before);
    });

    it("refuses while Kuvert has not yet taken the removed clerk out of the room", async () => {
      await orgs.removeClerk("org-a", ANNA, "@admin:ex.org");
      await orgs.removeClerk("org-b", ANNA, "@admin:ex.org");
      const before = await snapshot();
      await assert.rejects(eraseSubject(db, ANNA, DPO, pseudonym), /not yet taken them out of the room of organisations org-a, org-b/);
      await db.query("UPDATE room_sync SET state = 'done'");
      await assert.rejects(eraseSubject(db, ANNA, DPO, pseudonym), /not yet taken them out of the room/, "still joined as far as Kuvert knows");
      await db.query("UPDATE room_sync SET state = 'pending' WHERE organisation_id IN ('org-a', 'org-b')");
      assert.deepEqual(await snapshot(), before);
      // The room worker kicks her.
      await db.query("UPDATE room_sync SET state = 'done'");
      await db.query("UPDATE clerks SET membership = 'leave' WHERE matrix_id = $1", [ANNA]);
    });

    it("rejects a subject that is neither a Matrix ID nor an e-mail address", async () => {
      await assert.rejects(subjectReport(db, "anna"), (err: unknown) => err instanceof KuvertError && err.status === 400);
      await assert.rejects(eraseSubject(db, "p:abc", DPO, pseudonym), (err: unknown) => err instanceof KuvertError && err.status === 400);
    });

    it("reports every section for a Matrix ID, and nothing of the other person", async () => {
      const auditBefore = (await db.query("SELECT 1 FROM audit_log")).rows.length;
      matrixReport = await subjectReport(db, ANNA, { actor: DPO });
      assert.equal(matrixReport.subject, ANNA);
      assert.equal(matrixReport.kind, "matrix-id");
      assert.deepEqual(
        matrixReport.sections.map((s) => s.name),
        ["clerks", "accounts", "staff", "consoleSessions", "documentsSent", "organisationDocuments", "mail", "guestLinks", "roomEvents", "roomProblems", "audit"],
      );
      const clerks = sectionRows(matrixReport, "clerks");
      assert.deepEqual(
        clerks.map((c) => [c.organisation, c.organisationName, c.name, c.email, c.matrixId, c.status, c.membership]),
        [
          ["org-a", "Gemeinde A", "Anna Beispiel", ANNA_MAIL, ANNA, "removed", "leave"],
          ["org-b", "Gemeinde B", "Anna Beispiel", ANNA_MAIL, ANNA, "removed", "leave"],
        ],
      );
      assert.ok(typeof clerks[0]!.removedAt === "string");
      assert.deepEqual(
        sectionRows(matrixReport, "staff").map((r) => [r.roles, r.status]),
        [[["staff"], "removed"]],
      );
      assert.deepEqual(
        sectionRows(matrixReport, "documentsSent").map((d) => [d.id, d.organisation, d.filename, d.state]),
        [["doc-anna-in", "org-a", "doc-anna-in.pdf", "checked"]],
      );
      assert.deepEqual(
        sectionRows(matrixReport, "organisationDocuments").map((d) => d.id),
        ["doc-out-a", "doc-out-b"],
        "delivered while she was a clerk: not before she joined, not to another organisation, not undelivered",
      );
      assert.deepEqual(sectionRows(matrixReport, "mail"), []);
      assert.deepEqual(
        sectionRows(matrixReport, "roomEvents").map((r) => [r.state, r.count, r.eventTypes]),
        [
          ["done", 2, ["m.room.member", "m.room.message"]],
          ["failed", 1, ["m.room.message"]],
        ],
      );
      assert.deepEqual(sectionRows(matrixReport, "roomProblems"), [{ organisation: "org-b", problem: `${ANNA} is banned from the room; only a person can lift the ban\n${OTHER_PERSON} could not be invited: M_FORBIDDEN` }]);
      const auditRows = sectionRows(matrixReport, "audit");
      assert.deepEqual(auditRows.map((r) => `${r.action}:${r.organisation ?? ""}`).sort(), [
        "clerk.removed:org-a",
        "clerk.removed:org-b",
        "document.uploaded:org-a",
        "inbound.checked:org-a",
        "organisation.created:org-a",
        "organisation.created:org-b",
        "staff.removed:",
        "staff.set:",
      ]);
      const created = auditRows.find((r) => r.action === "organisation.created")!;
      assert.deepEqual((created.details as { clerks: string[] }).clerks, [ANNA, OTHER_PERSON], "another clerk named in the same row is left out");
      const text = JSON.stringify(matrixReport);
      for (const other of ["bob", "doc-out-c", "doc-out-before", "doc-out-held", "annabelle", "@sam:ex.org", "@admin:ex.org", "private words"]) {
        assert.ok(!text.toLowerCase().includes(other), `the report does not contain ${other}`);
      }
      const reported = (await db.query<AuditRow>("SELECT * FROM audit_log ORDER BY seq DESC LIMIT 1")).rows[0]!;
      assert.equal((await db.query("SELECT 1 FROM audit_log")).rows.length, auditBefore + 1);
      assert.equal(reported.action, "subject.report");
      assert.equal(reported.actor, DPO);
      assert.equal(reported.object, pseudonym(ANNA));
      assert.ok(!JSON.stringify(reported).includes("anna"), "the report is audited with the pseudonym only");
    });

    it("reports an e-mail address whatever its case, with the e-mails sent to it", async () => {
      mailReport = await subjectReport(db, " ANNA@example.org ", { actor: DPO });
      assert.equal(mailReport.subject, ANNA_MAIL);
      assert.equal(mailReport.kind, "email");
      assert.deepEqual(
        sectionRows(mailReport, "clerks").map((c) => c.organisation),
        ["org-a", "org-b"],
      );
      assert.deepEqual(
        sectionRows(mailReport, "mail").map((m) => [m.id, m.kind, m.organisation, m.state]),
        [
          [annaMailIds[0], "document", "org-a", "sent"],
          [annaMailIds[1], "document", "org-a", "combined"],
          [annaMailIds[2], "document", "org-b", "pending"],
        ],
      );
      assert.deepEqual(
        sectionRows(mailReport, "organisationDocuments").map((d) => d.id),
        ["doc-out-a", "doc-out-b"],
      );
      assert.deepEqual(
        sectionRows(mailReport, "guestLinks").map((g) => [g.id, g.call, g.name, g.email, g.revokedAt]),
        [["link-anna", "call-a", "Anna Beispiel", ANNA_MAIL, null]],
      );
      assert.deepEqual(sectionRows(matrixReport, "guestLinks"), [], "guests are invited by address, not by Matrix ID");
      for (const name of ["staff", "documentsSent", "roomEvents", "roomProblems"]) assert.deepEqual(sectionRows(mailReport, name), [], name);
      assert.deepEqual(
        sectionRows(mailReport, "audit").map((r) => r.action),
        ["mail.sent"],
      );
      assert.ok(!JSON.stringify(mailReport).toLowerCase().includes("bob"));

      const en = formatReport(mailReport, "en");
      assert.match(en, /Data-subject report/);
      assert.match(en, /Person: anna@example\.org \(e-mail address\)/);
      assert.match(en, /E-mails to the person \(3\)/);
      assert.match(en, /Invitations to video consultations \(1\)/);
      assert.match(formatReport(mailReport, "de"), /Einladungen zu Videoberatungen \(1\)/);
      assert.match(en, /Beitragsbescheid 2036/);
      assert.match(en, /The clerk records also name @anna:ex\.org/, "points the dpo to the person's other identifier");
      const de = formatReport(matrixReport, "de");
      assert.match(de, /Auskunft/);
      assert.match(de, /Von der Person gesendete Dokumente \(1\)/);
      assert.match(de, /Dateiname: doc-anna-in\.pdf/);
      assert.match(de, /Gespeicherte Raumereignisse \(3\)/);
      assert.match(de, /Prüfprotokoll/);
    });

    it("erases exactly what it says, keeps the other person's data and the audit chain", async () => {
      const before = await snapshot();
      const p = pseudonym(ANNA);
      const byMatrixId = await eraseSubject(db, ANNA, DPO, pseudonym);
      assert.equal(count(byMatrixId.erased, "clerk records"), 2);
      assert.equal(count(byMatrixId.erased, "staff record"), 1);
      assert.equal(count(byMatrixId.erased, "documents the person sent"), 1);
      assert.equal(count(byMatrixId.erased, "notification e-mails to the address that were sent"), 0);
      assert.equal(count(byMatrixId.erased, "stored room events"), 3);
      assert.equal(count(byMatrixId.erased, "room notes"), 1);
      assert.equal(count(byMatrixId.kept, "metadata of the documents"), 1);
      assert.equal(count(byMatrixId.kept, "documents delivered to organisations"), 2);
      assert.equal(count(byMatrixId.kept, "documents the person sent that are still"), 0);
      assert.equal(count(byMatrixId.kept, "audit log rows"), sectionRows(matrixReport, "audit").length);
      for (const k of byMatrixId.kept) assert.ok(k.why.length > 30, `says why ${k.what} is kept`);

      const clerks = (await db.query<{ id: string; matrix_id: string; email: string; display_name: string; status: string }>("SELECT * FROM clerks WHERE id = ANY ($1) ORDER BY id", [annaClerkIds])).rows;
      assert.deepEqual(
        clerks.map((c) => [c.matrix_id, c.email, c.display_name, c.status]),
        [
          [p, p, p, "removed"],
          [p, p, p, "removed"],
        ],
      );
      assert.equal((await db.query("SELECT 1 FROM staff_members WHERE matrix_id = $1", [ANNA])).rows.length, 0);
      assert.deepEqual((await db.query("SELECT submitted_by FROM documents WHERE id = 'doc-anna-in'")).rows, [{ submitted_by: p }]);
      assert.deepEqual((await db.query<{ event: unknown; state: string }>("SELECT event, state FROM inbound_events WHERE event_id = ANY ($1) ORDER BY seq", [annaEvents])).rows, [
        { event: { redacted: true }, state: "done" },
        { event: { redacted: true }, state: "done" },
        { event: { redacted: true }, state: "failed" },
      ]);
      const problem = (await db.query<{ room_problem: string }>("SELECT room_problem FROM organisations WHERE id = 'org-b'")).rows[0]!.room_problem;
      assert.equal(problem, `${p} is banned from the room; only a person can lift the ban\n${BOB} could not be invited: M_FORBIDDEN`);

      const byMail = await eraseSubject(db, "Anna@Example.org", DPO, pseudonym);
      assert.equal(count(byMail.erased, "clerk records"), 0, "already erased by the Matrix ID");
      assert.equal(count(byMail.erased, "notification e-mails to the address that were sent"), 2);
      assert.equal(count(byMail.erased, "notification e-mails to the address not yet sent"), 1);
      assert.equal(count(byMail.kept, "audit log rows"), 1);
      assert.equal((await db.query("SELECT 1 FROM mail_outbox WHERE id = ANY ($1)", [annaMailIds])).rows.length, 0);
      assert.equal(count(byMail.erased, "guest links"), 1);
      const link = (await db.query<{ guest_name: string; email: string; revoked_at: Date | null; revoked_by: string }>("SELECT * FROM guest_links WHERE id = 'link-anna'")).rows[0]!;
      const pm = pseudonym(ANNA_MAIL);
      assert.deepEqual([link.guest_name, link.email, link.revoked_by], [pm, pm, DPO]);
      assert.ok(link.revoked_at, "a still valid link is withdrawn");

      // Everything else is as it was.
      const after = await snapshot();
      const drop: Record<string, (r: Record<string, unknown>) => boolean> = {
        clerks: (r) => annaClerkIds.includes(r.id as string),
        staff_members: (r) => r.matrix_id === ANNA,
        documents: (r) => r.id === "doc-anna-in",
        mail_outbox: (r) => annaMailIds.includes(r.id as string),
        guest_links: (r) => r.id === "link-anna",
        inbound_events: (r) => annaEvents.includes(r.event_id as string),
      };
      for (const [table] of tables) {
        const keep = (rows: Record<string, unknown>[]) => rows.filter((r) => !drop[table]?.(r));
        if (table === "audit_log") {
          assert.deepEqual(after.audit_log!.slice(0, before.audit_log!.length), before.audit_log, "audit rows are unchanged");
          assert.deepEqual(
            after.audit_log!.slice(before.audit_log!.length).map((r) => r.action),
            ["subject.erased", "subject.erased"],
          );
        } else if (table === "organisations") {
          const strip = (rows: Record<string, unknown>[]) => rows.map((r) => ({ ...r, room_problem: r.id === "org-b" ? null : r.room_problem }));
          assert.deepEqual(strip(after.organisations!), strip(before.organisations!));
        } else {
          assert.deepEqual(keep(after[table]!), keep(before[table]!), `${table}: only the person's rows changed`);
        }
      }
      assert.ok(after.mail_outbox!.some((m) => m.id === bobMailId));
      assert.deepEqual(
        after.clerks!.filter((c) => c.matrix_id === BOB).map((c) => c.status),
        ["active", "active", "active"],
      );
    });

    it("audits the erasure with the pseudonym only, and the chain verifies", async () => {
      const verified = await verifyAuditLog(db);
      assert.equal(verified.ok, true, JSON.stringify(verified.brokenAt));
      const rows = (await db.query<AuditRow>("SELECT * FROM audit_log WHERE action = 'subject.erased' ORDER BY seq")).rows;
      assert.deepEqual(
        rows.map((r) => [r.actor, r.object, r.outcome]),
        [
          [DPO, pseudonym(ANNA), "ok"],
          [DPO, pseudonym(ANNA_MAIL), "ok"],
        ],
      );
      assert.deepEqual(rows[0]!.details, {
        kind: "matrix-id",
        erased: { clerks: 2, accounts: 0, staff: 1, consoleSessions: 0, documentsSent: 1, mailSent: 0, mailPending: 0, guestLinks: 0, roomEvents: 3, roomProblems: 1 },
        kept: { documentMetadata: 1, documentsInProgress: 0, organisationDocuments: 2, roomEventsPending: 0, auditRows: sectionRows(matrixReport, "audit").length },
      });
      for (const row of rows) {
        const text = JSON.stringify(row).toLowerCase();
        for (const clear of [ANNA, ANNA_MAIL, "anna beispiel"]) assert.ok(!text.includes(clear), `the subject.erased row does not contain ${clear}`);
      }
    });

    it("finds nothing but the kept audit rows after erasure", async () => {
      for (const [subject, earlier] of [
        [ANNA, matrixReport],
        [ANNA_MAIL, mailReport],
      ] as const) {
        const report = await subjectReport(db, subject, { actor: DPO });
        for (const s of report.sections) {
          if (s.name === "audit")
            assert.deepEqual(
              s.rows.map((r) => r.seq),
              sectionRows(earlier, "audit").map((r) => r.seq),
              `${subject}: the same audit rows`,
            );
          else assert.deepEqual(s.rows, [], `${subject}: nothing in ${s.name}`);
        }
      }
      assert.equal((await verifyAuditLog(db)).ok, true);
    });

    it("refuses to erase configured staff", async () => {
      await orgs.syncStaff([{ userId: "@sam:ex.org", roles: ["admin"] }]);
      const before = await snapshot();
      await assert.rejects(eraseSubject(db, "@sam:ex.org", DPO, pseudonym), /configured as staff/);
      assert.deepEqual(await snapshot(), before);
    });
  });
}
