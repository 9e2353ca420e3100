// Recording finished work several items per transaction (appservice/workers/batch.ts), on the
// embedded database: which items share a transaction, and what one bad item does to the others.
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, beforeEach, describe, it } from "node:test";
import { openDatabase, type Database } from "../../appservice/db/database.ts";
import { BatchWriter, type BatchWriterOptions } from "../../appservice/workers/batch.ts";

let db: Database;

before(async () => {
  db = await openDatabase({ embeddedDir: "memory://", poolSize: 1 });
  // A negative id is refused by the database, as a row breaking a constraint would be.
  await db.exec("CREATE TABLE recorded (id int PRIMARY KEY CHECK (id >= 0), batch int NOT NULL)");
});

after(async () => {
  await db.close();
});

beforeEach(async () => {
  await db.exec("DELETE FROM recorded");
});

/** A writer of ids into `recorded`, each batch numbered; what it was told of failures. */
function writer(opts: Partial<BatchWriterOptions<number>> = {}): { w: BatchWriter<number>; batches: number[][]; failed: number[]; written: number[] } {
  const batches: number[][] = [];
  const failed: number[] = [];
  const written: number[] = [];
  const w = new BatchWriter<number>({
    db,
    maxBatch: 64,
    write: async (tx, items) => {
      batches.push([...items]);
      await tx.query("INSERT INTO recorded (id, batch) SELECT unnest($1::int[]), $2", [items, batches.length]);
    },
    written: async (items) => {
      written.push(...items);
    },
    failed: (item) => failed.push(item),
    ...opts,
  });
  return { w, batches, failed, written };
}

async function recordedIds(): Promise<number[]> {
  return (await db.query<{ id: number }>("SELECT id FROM recorded ORDER BY id")).rows.map((r) => r.id);
}

describe("batch writer", () => {
  it("writes what arrived while a batch was written in one transaction, and nothing twice", async () => {
    const { w, batches, written } = writer();
    for (let i = 1; i <= 5; i++) await w.add(i);
    await w.drain();
    assert.deepEqual(batches, [[1], [2, 3, 4, 5]], "the first alone at once, the rest together");
    assert.deepEqual(await recordedIds(), [1, 2, 3, 4, 5]);
    assert.deepEqual(written, [1, 2, 3, 4, 5], "told after each commit");
  });

  it("holds a batch open while more are coming, and writes one alone at once when nothing is", async () => {
    let coming = false;
    const { w, batches } = writer({ gather: { ms: 200, while: () => coming } });
    await w.add(1);
    await w.drain();
    coming = true;
    const started = performance.now();
    await w.add(2);
    await sleep(20);
    await w.add(3);
    await w.add(4);
    while (batches.length < 2) await sleep(5);
    assert.ok(performance.now() - started >= 190, "the batch waited for the window");
    assert.deepEqual(batches, [[1], [2, 3, 4]]);
  });

  it("ends the window early when the batch is full or the writer is drained", async () => {
    const { w, batches } = writer({ maxBatch: 3, gather: { ms: 60_000, while: () => true } });
    for (const i of [1, 2, 3]) await w.add(i);
    await w.add(4);
    while (batches.length < 1) await sleep(5);
    assert.deepEqual(batches, [[1, 2, 3]], "full: written without waiting out the window");
    const started = performance.now();
    await w.drain();
    assert.ok(performance.now() - started < 5_000, "drain does not wait out the window");
    assert.deepEqual(batches, [[1, 2, 3], [4]]);
  });

  it("writes the others of a batch the database refuses because of one item, and reports that one", async () => {
    const { w, batches, failed } = writer();
    await w.add(1);
    for (const i of [2, -3, 4]) await w.add(i);
    await w.drain();
    assert.deepEqual(await recordedIds(), [1, 2, 4]);
    assert.deepEqual(failed, [-3]);
    assert.deepEqual(batches, [[1], [2, -3, 4], [2], [-3], [4]], "the refused batch, then each of its items alone");
  });

  it("makes a handler wait for its batch once the writer is behind, and tells it when that write fails", async () => {
    const { w, failed } = writer({ maxBatch: 2 });
    await w.add(1);
    await w.add(2);
    await w.add(3);
    // 1 is being written and 2, 3 fill the next batch: -4, beyond it, waits for its own write.
    const behind = w.add(-4);
    await assert.rejects(behind, /check/i, "the handler hears of the failed write");
    await w.drain();
    assert.deepEqual(await recordedIds(), [1, 2, 3]);
    assert.deepEqual(failed, [], "a failure a handler heard of is not reported twice");
  });
});
