// Backup and restore with PostgreSQL's own tools, as the README tells operators to do it:
// a dump restored into a fresh database gives a Kuvert that starts, whose audit chain holds,
// and that still knows every organisation and its room.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { verifyAuditLog } from "../../appservice/audit/audit.ts";
import { Kuvert } from "../../appservice/kuvert.ts";
import { createDatabase } from "../support/postgres.ts";
import { startStack, waitFor, type Stack } from "../support/harness.ts";
import { tempDir } from "../support/tmp.ts";

function postgresTool(name: string): string {
  const base = "/usr/lib/postgresql";
  for (const v of existsSync(base) ? readdirSync(base).sort((a, b) => Number(b) - Number(a)) : []) {
    if (existsSync(join(base, v, "bin", name))) return join(base, v, "bin", name);
  }
  return name;
}

describe("backup and restore", () => {
  let stack: Stack;
  let restored: Kuvert | undefined;

  before(async () => {
    stack = await startStack({ name: "backup" });
  });
  after(async () => {
    await restored?.stop();
    await stack.stop();
  });

  it("restores a dump into a fresh database: Kuvert starts, the audit chain holds, every organisation keeps its room", async () => {
    for (const id of ["alpha", "beta", "gamma"]) assert.equal((await stack.api("POST", "/api/v1/organisations", { id, name: id, tags: ["schools"] })).status, 201);
    const rooms = new Map<string, string>();
    for (const id of ["alpha", "beta", "gamma"]) rooms.set(id, await stack.roomOf(id));
    await stack.stopKuvert();

    const dump = join(tempDir("kuvert-backup-"), "kuvert.dump");
    execFileSync(postgresTool("pg_dump"), ["--format=custom", `--file=${dump}`, stack.config.database.url!]);
    const cluster = process.env.KUVERT_TEST_DATABASE_URL!;
    const fresh = await createDatabase(cluster, `kuvert_restored_${Date.now()}`);
    execFileSync(postgresTool("pg_restore"), ["--no-owner", `--dbname=${fresh}`, dump]);

    restored = await Kuvert.start({ ...stack.config, database: { ...stack.config.database, url: fresh }, logging: { ...stack.config.logging, level: "warn" } }, { registration: stack.registration });
    const verified = await verifyAuditLog(restored.db);
    assert.equal(verified.ok, true, JSON.stringify(verified.brokenAt));
    assert.ok(verified.rows > 5);
    const orgs = await restored.services.organisations.list();
    assert.deepEqual(new Map(orgs.map((o) => [o.id, o.roomId])), rooms);
    assert.ok(orgs.every((o) => o.roomState === "ready"));

    // And it works on: a new organisation gets its room, the chain goes on from the restored rows.
    await restored.services.organisations.apply({ id: "delta", name: "delta" }, "test");
    await waitFor("the new organisation's room", async () => (await restored!.services.organisations.get("delta")).roomState === "ready");
    assert.equal((await verifyAuditLog(restored.db)).ok, true);
  });
});
