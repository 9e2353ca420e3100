// The organisation model on both databases Kuvert runs on: PostgreSQL and the embedded PGlite.
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import { verifyAuditLog } from "../../appservice/audit/audit.ts";
import { openDatabase, type Database } from "../../appservice/db/database.ts";
import { listMigrations, migrate } from "../../appservice/db/migrate.ts";
import { KuvertError } from "../../appservice/errors.ts";
import { importOrganisations, parseOrganisationsCsv } from "../../appservice/organisations/csv.ts";
import { Organisations } from "../../appservice/organisations/service.ts";
import { findOrganisation, findOrganisationByRoom, setClerkMembership } from "../../appservice/organisations/store.ts";
import { freshDatabaseUrl } from "../support/database.ts";
import { tempDir } from "../support/tmp.ts";

for (const kind of ["postgres", "pglite"] as const) {
  describe(`organisations on ${kind}`, () => {
    let db: Database;
    let orgs: Organisations;
    let roomWork = 0;
    const embeddedDir = tempDir("kuvert-pglite-");

    before(async () => {
      db = await openDatabase({ url: await freshDatabaseUrl(kind), embeddedDir, poolSize: 4 });
      assert.deepEqual(
        await migrate(db),
        listMigrations().map((m) => m.version),
        "a new database gets every migration",
      );
      assert.deepEqual(await migrate(db), [], "a second migrate applies nothing");
      orgs = new Organisations(db, () => roomWork++);
    });
    after(async () => {
      await db.close();
      rmSync(embeddedDir, { recursive: true, force: true });
    });

    const pendingRoomSyncs = async () => (await db.query<{ n: string }>("SELECT count(*) AS n FROM room_sync WHERE state = 'pending'")).rows[0]!.n;

    it("creates once; the same input again changes nothing", async () => {
      const input = { id: "musterstadt", name: "Musterstadt", tags: ["municipalities"], clerks: [{ matrixId: "@anna:ex.org", email: "Anna@Musterstadt.de" }] };
      const first = await orgs.apply(input, "test");
      assert.equal(first.outcome, "created");
      assert.equal(first.organisation.clerks[0]!.email, "anna@musterstadt.de");
      assert.equal(await pendingRoomSyncs(), "1");
      const again = await orgs.apply(input, "test");
      assert.equal(again.outcome, "unchanged");
      assert.equal(roomWork, 1, "no room work for an unchanged organisation");
    });

    it("adds and removes clerks, keeping the removed one on record", async () => {
      const result = await orgs.patch("musterstadt", { clerks: [{ matrixId: "@bernd:ex.org" }] }, "test");
      assert.equal(result.outcome, "updated");
      const byId = new Map(result.organisation.clerks.map((c) => [c.matrixId, c.status]));
      assert.deepEqual(Object.fromEntries(byId), { "@anna:ex.org": "removed", "@bernd:ex.org": "active" });
      const back = await orgs.addClerk("musterstadt", { matrixId: "@anna:ex.org" }, "test");
      assert.equal(back.organisation.clerks.filter((c) => c.status === "active").length, 2);
      assert.equal(back.organisation.clerks.length, 2, "the returning clerk's row is reused");
    });

    it("refuses bad input with the field and changes nothing", async () => {
      const before = await orgs.get("musterstadt");
      await assert.rejects(orgs.apply({ id: "musterstadt", name: "", clerks: [{ matrixId: "anna" }], colour: "red" }, "test"), (err: unknown) => {
        assert.ok(err instanceof KuvertError);
        assert.equal(err.status, 400);
        const paths = err.details!.map((d) => d.path).sort();
        assert.deepEqual(paths, ["clerks.0.matrixId", "colour", "name"]);
        return true;
      });
      assert.deepEqual(await orgs.get("musterstadt"), before);
    });

    it("archives once and then refuses changes", async () => {
      assert.equal((await orgs.archive("musterstadt", "test")).outcome, "updated");
      assert.equal((await orgs.archive("musterstadt", "test")).outcome, "unchanged");
      await assert.rejects(orgs.patch("musterstadt", { name: "Neu" }, "test"), (e: unknown) => e instanceof KuvertError && e.errcode === "KUVERT_ORGANISATION_ARCHIVED");
      await assert.rejects(orgs.addClerk("musterstadt", { matrixId: "@new:ex.org" }, "test"), (e: unknown) => e instanceof KuvertError && e.errcode === "KUVERT_ORGANISATION_ARCHIVED");
      const removed = await orgs.removeClerk("musterstadt", "@bernd:ex.org", "test");
      assert.equal(removed.outcome, "updated", "taking a clerk out of an archived organisation still works");
      assert.equal(removed.organisation.clerks.find((c) => c.matrixId === "@bernd:ex.org")?.status, "removed");
    });

    it("imports a CSV with a report per row; a bad row changes nothing and a rerun creates nothing", async () => {
      const csv = ["id,name,tags,clerks", "schule-a,Schule A,schools,@a:ex.org", "schule-b,Schule B,schools,@b:ex.org", "schule-a,Duplicate,,", "BAD,Bad,,"].join("\n");
      const first = await importOrganisations(db, orgs, parseOrganisationsCsv(csv), "test");
      assert.deepEqual(first.summary, { created: 2, updated: 0, unchanged: 0, error: 2 });
      assert.deepEqual(
        first.rows.map((r) => r.outcome),
        ["created", "created", "error", "error"],
      );
      assert.equal((await orgs.list({ tag: "schools" })).length, 2);
      assert.equal((await orgs.list({ search: "bad" })).length, 0);
      const rerun = await importOrganisations(db, orgs, parseOrganisationsCsv(csv), "test");
      assert.deepEqual(rerun.summary, { created: 0, updated: 0, unchanged: 2, error: 2 });
    });

    it("writes every change into an intact audit chain", async () => {
      const actions = (await db.query<{ action: string }>("SELECT action FROM audit_log ORDER BY seq")).rows.map((r) => r.action);
      assert.deepEqual(actions.slice(0, 5), ["organisation.created", "clerk.added", "clerk.removed", "clerk.added", "organisation.archived"]);
      const result = await verifyAuditLog(db);
      assert.equal(result.ok, true);
      assert.equal(result.rows, actions.length);
    });

    it("does not let Kuvert's role change or delete audit rows", async () => {
      await assert.rejects(db.query("UPDATE audit_log SET outcome = 'refused' WHERE seq = 1"), /append-only/);
      await assert.rejects(db.query("DELETE FROM audit_log WHERE seq = 1"), /append-only/);
    });

    it("finds a row changed behind Kuvert's back, at that row", async () => {
      await db.exec("ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update");
      await db.query("UPDATE audit_log SET actor = 'someone-else' WHERE seq = 3");
      await db.exec("ALTER TABLE audit_log ENABLE TRIGGER audit_log_no_update");
      const result = await verifyAuditLog(db);
      assert.equal(result.ok, false);
      assert.equal(result.brokenAt?.seq, "3");
      assert.equal(result.rows, 2);
    });

    it("reads an organisation with its clerks, by id and by room, in one query; an invitation does not undo a join recorded meanwhile", async () => {
      await orgs.apply({ id: "membership", name: "Membership", clerks: [{ matrixId: "@b:ex.org" }, { matrixId: "@a:ex.org", email: "a@ex.org", name: "A" }] }, "test");
      await db.query("UPDATE organisations SET room_id = '!m:ex.org' WHERE id = 'membership'");
      const byRoom = await findOrganisationByRoom(db, "!m:ex.org");
      assert.deepEqual(
        byRoom?.clerks.map((c) => [c.matrixId, c.email, c.name, c.status, c.membership]),
        [
          ["@b:ex.org", null, null, "active", null],
          ["@a:ex.org", "a@ex.org", "A", "active", null],
        ],
        "in the order they were added",
      );
      assert.equal(typeof byRoom?.clerks[0]?.id, "string");
      assert.deepEqual(await findOrganisation(db, "membership"), byRoom);
      assert.equal(await findOrganisation(db, "no-such-organisation"), null);
      await setClerkMembership(db, "membership", "@a:ex.org", "join");
      await setClerkMembership(db, "membership", "@a:ex.org", "invite", { keepJoin: true });
      assert.equal((await findOrganisation(db, "membership"))?.clerks[1]?.membership, "join");
      await setClerkMembership(db, "membership", "@a:ex.org", "leave");
      await setClerkMembership(db, "membership", "@a:ex.org", "invite", { keepJoin: true });
      assert.equal((await findOrganisation(db, "membership"))?.clerks[1]?.membership, "invite", "a new invitation after leaving is recorded");
    });
  });
}
