// A retention run deletes exactly what is due, keeps the audit chain verifiable, and audits its counts.
import assert from "node:assert/strict";
import { readdirSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { audit, verifyAuditLog } from "../../appservice/audit/audit.ts";
import { parseConfig } from "../../appservice/config/load.ts";
import { openDatabase, type Database } from "../../appservice/db/database.ts";
import { migrate } from "../../appservice/db/migrate.ts";
import { Organisations } from "../../appservice/organisations/service.ts";
import { runRetention } from "../../appservice/retention/retention.ts";
import { freshDatabaseUrl } from "../support/database.ts";
import { tempDir } from "../support/tmp.ts";

const DAY = 24 * 60 * 60 * 1000;
const now = new Date();
const daysAgo = (d: number) => new Date(now.getTime() - d * DAY);

describe("retention", () => {
  let db: Database;
  const staging = tempDir("kuvert-staging-");
  const config = parseConfig({ documents: { stagingDir: staging }, retention: { documentDays: 90, mailDays: 30, operationalDays: 14, auditYears: 10, stagingOrphanHours: 24 } });

  async function document(id: string, state: string, finishedDaysAgo: number | null): Promise<void> {
    await db.query(
      `INSERT INTO documents (id, direction, organisation_id, source, submitted_by, filename, size, state, finished_at)
       VALUES ($1, 'outbound', 'org', 'api', 'token:t', 'f.pdf', 1, $2, $3)`,
      [id, state, finishedDaysAgo === null ? null : daysAgo(finishedDaysAgo)],
    );
    await db.query("INSERT INTO document_work (document_id, state) VALUES ($1, 'done')", [id]);
  }

  async function mail(state: string, ageDays: number, combinedInto: string | null = null): Promise<string> {
    const res = await db.query<{ id: string }>(
      `INSERT INTO mail_outbox (kind, recipient, items, language, state, created_at, combined_into, batch_key)
       VALUES ('document', 'a@x.example', '[{"title":"t"}]', 'de', $1, $2, $3, 'k') RETURNING id`,
      [state, daysAgo(ageDays), combinedInto],
    );
    return res.rows[0]!.id;
  }

  before(async () => {
    db = await openDatabase({ url: await freshDatabaseUrl("postgres"), embeddedDir: "", poolSize: 4 });
    await migrate(db);
    // Audit rows over the years: 3 older than ten years, then recent ones (written with their own time).
    for (const years of [12, 11, 10.5]) await db.transaction((tx) => audit(tx, { actor: "test", action: "old", outcome: "ok" }, new Date(now.getTime() - years * 365.25 * DAY)));
    await new Organisations(db).apply({ id: "org", name: "Org" }, "test");
    await document("doc-old-delivered", "delivered", 120);
    await document("doc-old-rejected", "rejected", 91);
    await document("doc-recent", "delivered", 10);
    await document("doc-held", "held", null);
    const head = await mail("sent", 40);
    await mail("combined", 40, head);
    await mail("dead", 31);
    await mail("sent", 5);
    await mail("pending", 60);
    await db.query(
      `INSERT INTO inbound_events (event_id, room_id, event_type, event, state, received_at) VALUES
      ('$old', '!r', 'm.room.message', '{}', 'done', $1), ('$new', '!r', 'm.room.message', '{}', 'done', $2), ('$waiting', '!r', 'm.room.message', '{}', 'pending', $1)`,
      [daysAgo(20), daysAgo(1)],
    );
    await db.query("INSERT INTO appservice_transactions (txn_id, event_count, received_at) VALUES ('t-old', 1, $1), ('t-new', 1, $2)", [daysAgo(20), daysAgo(1)]);
    // Calls: one ended long ago with a long-expired guest link (both go), one ended long ago whose
    // link expired recently (the call waits for its link), one running with a valid link (stays).
    const call = async (id: string, endedDaysAgo: number | null) =>
      db.query(
        `INSERT INTO calls (id, organisation_id, room_id, widget_id, conference_id, room_name, started_by, started_at, expires_at, ended_at, ended_by, end_reason, phase, state)
         VALUES ($1, 'org', '!r', $1, 'c', 'Org', '@a:x', $2, $3, $4, $5, $6, 'remove', $7)`,
        [
          id,
          daysAgo((endedDaysAgo ?? 0) + 0.1),
          endedDaysAgo === null ? new Date(now.getTime() + DAY) : daysAgo(endedDaysAgo),
          endedDaysAgo === null ? null : daysAgo(endedDaysAgo),
          endedDaysAgo === null ? null : "kuvert",
          endedDaysAgo === null ? null : "expired",
          endedDaysAgo === null ? "pending" : "done",
        ],
      );
    const guestLink = (id: string, callId: string, expiredDaysAgo: number) => db.query("INSERT INTO guest_links (id, call_id, guest_name, email, created_by, expires_at) VALUES ($1, $2, 'Gast', 'g@x.example', 'token:t', $3)", [id, callId, daysAgo(expiredDaysAgo)]);
    await call("call-old", 100);
    await guestLink("link-old", "call-old", 99);
    await call("call-old-recent-link", 100);
    await guestLink("link-recent", "call-old-recent-link", 10);
    await call("call-running", null);
    await guestLink("link-valid", "call-running", -0.5);
    // Remembered OpenID tokens: one past its expiry (goes), one still remembered (stays).
    await db.query("INSERT INTO openid_tokens_seen (token_hash, purpose, expires_at) VALUES ('h-old', 'verify', $1), ('h-live', 'console', $2)", [daysAgo(1), new Date(now.getTime() + DAY)]);
    for (const [name, hoursOld] of [
      ["doc-held", 100],
      ["doc-gone", 100],
      ["doc-fresh", 1],
      ["batch_x.part", 48],
    ] as const) {
      writeFileSync(join(staging, name), "x");
      const t = new Date(now.getTime() - hoursOld * 60 * 60 * 1000);
      utimesSync(join(staging, name), t, t);
    }
  });
  after(() => db.close());

  it("deletes exactly what is due and audits the counts", async () => {
    const counts = await runRetention(db, config, now);
    assert.deepEqual(counts, { documents: 2, batches: 0, mail: 3, inboundEvents: 1, transactions: 1, workItems: 2, auditRows: 3, stagingFiles: 2, guestLinks: 1, calls: 1, openIdTokens: 1, encryptedSends: 0 });
    assert.deepEqual(
      (await db.query<{ id: string }>("SELECT id FROM calls ORDER BY id")).rows.map((r) => r.id),
      ["call-old-recent-link", "call-running"],
    );
    assert.deepEqual(
      (await db.query<{ id: string }>("SELECT id FROM guest_links ORDER BY id")).rows.map((r) => r.id),
      ["link-recent", "link-valid"],
    );
    const ids = (await db.query<{ id: string }>("SELECT id FROM documents ORDER BY id")).rows.map((r) => r.id);
    assert.deepEqual(ids, ["doc-held", "doc-recent"]);
    const mails = (await db.query<{ state: string }>("SELECT state FROM mail_outbox ORDER BY id")).rows.map((r) => r.state);
    assert.deepEqual(mails, ["sent", "pending"], "recent and unsent e-mails stay");
    assert.deepEqual(
      (await db.query<{ event_id: string }>("SELECT event_id FROM inbound_events ORDER BY event_id")).rows.map((r) => r.event_id),
      ["$new", "$waiting"],
    );
    assert.deepEqual(readdirSync(staging).sort(), ["doc-fresh", "doc-held"], "a waiting document's file and a fresh one stay");
    const run = await db.query<{ details: Record<string, number> }>("SELECT details FROM audit_log WHERE action = 'retention.run'");
    assert.deepEqual(run.rows[0]!.details, counts);
  });

  it("keeps the rest of the audit chain verifiable from the anchor, and a second run finds nothing", async () => {
    const verified = await verifyAuditLog(db);
    assert.equal(verified.ok, true, JSON.stringify(verified.brokenAt));
    assert.equal((await db.query("SELECT 1 FROM audit_log WHERE action = 'old'")).rowCount, 0);
    const again = await runRetention(db, config, now);
    assert.deepEqual(again, { documents: 0, batches: 0, mail: 0, inboundEvents: 0, transactions: 0, workItems: 0, auditRows: 0, stagingFiles: 0, guestLinks: 0, calls: 0, openIdTokens: 0, encryptedSends: 0 });
    assert.equal((await verifyAuditLog(db)).ok, true);
  });

  it("still refuses to delete audit rows inside the legal period, or out of order", async () => {
    await assert.rejects(db.query("DELETE FROM audit_log WHERE action = 'organisation.created'"), /append-only/);
    const pruneWith = (cutoff: Date, where: string) =>
      db.transaction(async (tx) => {
        await tx.query("SELECT set_config('kuvert.audit_prune_before', $1, true)", [cutoff.toISOString()]);
        await tx.query(`DELETE FROM audit_log WHERE ${where}`);
      });
    await assert.rejects(pruneWith(new Date(Date.now() + DAY), "seq = (SELECT max(seq) FROM audit_log)"), /append-only/, "a cut-off that is not long past is refused");
    await assert.rejects(pruneWith(new Date(Date.now() - 400 * DAY), "seq = (SELECT max(seq) FROM audit_log)"), /append-only/, "a recent row is refused");
  });

  it("finds removed first rows when there is no anchor", async () => {
    await db.exec("DELETE FROM audit_anchor");
    const result = await verifyAuditLog(db);
    assert.equal(result.ok, false);
    assert.match(result.brokenAt!.reason, /missing/);
  });
});
