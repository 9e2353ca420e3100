// The audit chain under concurrent writers: every transaction that appends takes the chain's lock
// and reads its end in one round trip (migration 016); the chain must come out whole and gapless
// however the transactions interleave, from one pool or from several processes' pools.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { auditMany, verifyAuditLog } from "../../appservice/audit/audit.ts";
import { openDatabase, type Database } from "../../appservice/db/database.ts";
import { migrate } from "../../appservice/db/migrate.ts";
import { freshDatabaseUrl } from "../support/database.ts";
import { tempDir } from "../support/tmp.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

for (const kind of ["postgres", "pglite"] as const) {
  describe(`audit chain with concurrent writers (${kind})`, () => {
    const pools: Database[] = [];

    before(async () => {
      const url = await freshDatabaseUrl(kind);
      // Two pools stand for two Kuvert processes (PGlite has one connection, and one process).
      for (let i = 0; i < (kind === "postgres" ? 2 : 1); i++) pools.push(await openDatabase({ url, embeddedDir: kind === "pglite" ? tempDir("audit-chain") : "", poolSize: 4 }));
      await migrate(pools[0]!);
    });

    after(async () => {
      for (const db of pools) await db.close().catch(() => undefined);
    });

    it("60 transactions appending one to three rows each, interleaved, leave one whole chain", async () => {
      const writes = Array.from({ length: 60 }, (_, i) => {
        const db = pools[i % pools.length]!;
        const rows = 1 + (i % 3);
        return db.transaction(async (tx) => {
          // Work before and after the append, so that transactions overlap while one holds the lock.
          await sleep(i % 7);
          await auditMany(
            tx,
            Array.from({ length: rows }, (_, r) => ({ actor: "kuvert", action: "test.append", object: `w${i}-${r}`, outcome: "ok" as const })),
          );
          await sleep(i % 5);
        });
      });
      await Promise.all(writes);
      const expected = Array.from({ length: 60 }, (_, i) => 1 + (i % 3)).reduce((a, b) => a + b, 0);
      const verified = await verifyAuditLog(pools[0]!);
      assert.deepEqual(verified, { ok: true, rows: expected }, "every row chained to the one before it");
      const seqs = await pools[0]!.query<{ min: string; max: string; n: string }>("SELECT min(seq) AS min, max(seq) AS max, count(*) AS n FROM audit_log WHERE action = 'test.append'");
      assert.deepEqual(seqs.rows[0], { min: "1", max: String(expected), n: String(expected) }, "numbered without gaps or repeats");
    });

    it("a transaction that rolls back leaves no gap: the next append continues the chain", async () => {
      const db = pools[0]!;
      await assert.rejects(
        db.transaction(async (tx) => {
          await auditMany(tx, [{ actor: "kuvert", action: "test.rolledback", outcome: "ok" }]);
          throw new Error("changed its mind");
        }),
        /changed its mind/,
      );
      await db.transaction((tx) => auditMany(tx, [{ actor: "kuvert", action: "test.after", outcome: "ok" }]));
      const verified = await verifyAuditLog(db);
      assert.equal(verified.ok, true);
      const rolledBack = await db.query<{ n: string }>("SELECT count(*) AS n FROM audit_log WHERE action = 'test.rolledback'");
      assert.equal(rolledBack.rows[0]!.n, "0");
    });
  });
}
