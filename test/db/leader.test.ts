// Singleton jobs are owned through a lease row: one process at a time holds it, a holder that
// dies is replaced within seconds, one that stops gives it up at once. A second process pointed
// at the embedded database refuses with a sentence.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { acquireEmbeddedLock } from "../../appservice/db/lock.ts";
import { openDatabase, type Database } from "../../appservice/db/database.ts";
import { migrate } from "../../appservice/db/migrate.ts";
import { Leadership } from "../../appservice/workers/leader.ts";
import { freshDatabaseUrl } from "../support/database.ts";
import { tempDir } from "../support/tmp.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(what: string, check: () => boolean, timeoutMs: number): Promise<number> {
  const start = Date.now();
  while (!check()) {
    if (Date.now() - start > timeoutMs) assert.fail(`${what} did not happen within ${timeoutMs} ms`);
    await sleep(50);
  }
  return Date.now() - start;
}

describe("leadership of singleton jobs (PostgreSQL)", () => {
  let url: string | undefined;
  // Each "process" has a connection pool of its own, as separate Kuvert processes would.
  const pools: Database[] = [];
  const open = async () => {
    const db = await openDatabase({ url, embeddedDir: "", poolSize: 2 });
    pools.push(db);
    return db;
  };

  before(async () => {
    url = await freshDatabaseUrl("postgres");
    const db = await open();
    await migrate(db);
  });
  after(async () => {
    for (const db of pools) await db.close().catch(() => undefined);
  });

  it("exactly one of three contenders holds the lease, also when they try at the same moment", async () => {
    const dbs = [await open(), await open(), await open()];
    const contenders = dbs.map((db, i) => new Leadership(db, "race", { holder: `p${i}`, leaseSeconds: 5, renewSeconds: 1 }));
    await Promise.all(contenders.map((c) => c.start()));
    for (let round = 0; round < 3; round++) {
      assert.equal(contenders.filter((c) => c.held).length, 1, "one holder at a time");
      await sleep(1100);
    }
    const row = await dbs[0]!.query<{ holder: string }>("SELECT holder FROM leaders WHERE name = 'race'");
    assert.equal(row.rows[0]?.holder, contenders.find((c) => c.held)?.holder);
    await Promise.all(contenders.map((c) => c.stop()));
  });

  it("a holder that dies (no more renewals) is replaced within the lease time; one that stops is replaced at once", async () => {
    const dying = await open();
    const changes: boolean[] = [];
    const first = new Leadership(dying, "job", { holder: "first", leaseSeconds: 2, renewSeconds: 1, onChange: (h) => changes.push(h) });
    await first.start();
    assert.equal(first.held, true);
    const second = new Leadership(await open(), "job", { holder: "second", leaseSeconds: 2, renewSeconds: 1 });
    await second.start();
    assert.equal(second.held, false, "the lease is held by the first");

    // The first process loses its database (as when it is killed): its renewals stop reaching the row.
    await dying.close();
    const tookMs = await until("the takeover", () => second.held, 5000);
    assert.ok(tookMs <= 4000, `taken over after ${tookMs} ms`);
    await until("the first noticing it lost the lease", () => !first.held, 3000);
    assert.deepEqual(changes, [true, false]);
    await first.stop();

    const third = new Leadership(await open(), "job", { holder: "third", leaseSeconds: 30, renewSeconds: 1 });
    await third.start();
    assert.equal(third.held, false);
    await second.stop();
    // A 30 s lease given up by stop(): the next try takes it, no waiting for it to run out.
    await until("the takeover after a clean stop", () => third.held, 2500);
    await third.stop();
  });
});

describe("the embedded database", () => {
  it("refuses a second process with a sentence that names the running one", () => {
    const dir = tempDir("kuvert-embedded-");
    const lock = acquireEmbeddedLock(dir);
    try {
      const lockModule = join(import.meta.dirname, "../../appservice/db/lock.ts");
      const child = spawnSync(process.execPath, ["--input-type=module", "-e", `import { acquireEmbeddedLock } from ${JSON.stringify(lockModule)}; acquireEmbeddedLock(${JSON.stringify(dir)});`], { encoding: "utf8" });
      assert.notEqual(child.status, 0, "the second process must not get the lock");
      assert.match(child.stderr, new RegExp(`The embedded database in .* is in use by process ${process.pid} \\(a running Kuvert\\)`));
    } finally {
      lock.release();
    }
    // Once the first has let go, a second process may start.
    const lockModule = join(import.meta.dirname, "../../appservice/db/lock.ts");
    const again = spawnSync(process.execPath, ["--input-type=module", "-e", `import { acquireEmbeddedLock } from ${JSON.stringify(lockModule)}; acquireEmbeddedLock(${JSON.stringify(dir)}).release();`], { encoding: "utf8" });
    assert.equal(again.status, 0, again.stderr);
  });
});
