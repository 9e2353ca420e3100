// Intake paced to delivery (appservice/documents/pacing.ts): the backlog is a number the test
// sets, as the document_work table would give it.
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, it } from "node:test";
import { IntakePacer } from "../../appservice/documents/pacing.ts";

/** A backlog the test moves, and how often the pacer read it. */
function backlog(start: number): { n: number; reads: number; read: () => Promise<number> } {
  const b = {
    n: start,
    reads: 0,
    read: async () => {
      b.reads++;
      return b.n;
    },
  };
  return b;
}

/** Whether `p` settled within `ms`. */
async function settlesWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  return Promise.race([p.then(() => true), sleep(ms).then(() => false)]);
}

describe("intake pacing", () => {
  it("takes uploads at once below the backlog, counting each one it lets in between reads", async () => {
    const b = backlog(0);
    const pacer = new IntakePacer(b.read, { backlog: 3, refreshMs: 1000, stallMs: 60_000 });
    for (let i = 0; i < 3; i++) assert.equal(await settlesWithin(pacer.admit(), 50), true, `upload ${i + 1} of 3`);
    assert.equal(b.reads, 1, "read once; the rest counted");
    b.n = 3;
    const fourth = pacer.admit();
    assert.equal(await settlesWithin(fourth, 100), false, "the fourth waits: three let in since the read");
    b.n = 2;
    assert.equal(await settlesWithin(fourth, 1500), true, "in once the number read is below the backlog");
  });

  it("lets a waiting upload in when deliveries bring the backlog down, and not before", async () => {
    const b = backlog(5);
    const pacer = new IntakePacer(b.read, { backlog: 4, refreshMs: 10, stallMs: 60_000 });
    const waiting = pacer.admit();
    assert.equal(await settlesWithin(waiting, 100), false, "5 waiting for delivery, at most 4");
    assert.ok(b.reads >= 3, `read again while it waits (${b.reads} reads)`);
    pacer.finished();
    b.n = 3;
    const waited = await waiting;
    assert.ok(waited >= 100, `waited ${waited} ms`);
  });

  it("lets waiting uploads in as this process's deliveries finish, first come first in, without waiting for a read", async () => {
    const b = backlog(2);
    const pacer = new IntakePacer(b.read, { backlog: 2, refreshMs: 60_000, stallMs: 60_000 });
    const order: string[] = [];
    const first = pacer.admit().then(() => order.push("first"));
    const second = pacer.admit().then(() => order.push("second"));
    assert.equal(await settlesWithin(Promise.race([first, second]), 100), false, "2 waiting for delivery, at most 2");
    pacer.finished();
    assert.equal(await settlesWithin(first, 50), true, "one finished: the first comes in");
    assert.equal(await settlesWithin(second, 100), false, "and only the first");
    pacer.finished();
    assert.equal(await settlesWithin(second, 50), true);
    assert.deepEqual(order, ["first", "second"]);
    assert.equal(b.reads, 1);
  });

  it("stops waiting when no document finished for the stall time, and waits again once deliveries move", async () => {
    const b = backlog(10);
    const pacer = new IntakePacer(b.read, { backlog: 4, refreshMs: 10, stallMs: 200 });
    const started = performance.now();
    await pacer.admit();
    const waited = performance.now() - started;
    assert.ok(waited >= 150, `taken after the stall time, not at once (${waited} ms)`);
    assert.equal(await settlesWithin(pacer.admit(), 50), true, "while nothing is delivered, uploads are taken at once");
    pacer.finished();
    assert.equal(await settlesWithin(pacer.admit(), 100), false, "a delivery finished: the backlog counts again");
  });

  it("lets no upload wait longer than its longest wait, and keeps the others in their order", async () => {
    const b = backlog(10);
    const pacer = new IntakePacer(b.read, { backlog: 4, refreshMs: 10, stallMs: 60_000, maxWaitMs: 150 });
    const first = pacer.admit();
    await sleep(100);
    const second = pacer.admit();
    const waited = await first;
    assert.ok(waited >= 140 && waited < 1000, `the first came in after its longest wait (${waited} ms)`);
    assert.equal(await settlesWithin(second, 20), false, "the second waits on");
    assert.ok((await second) >= 140);
  });

  it("never waits nor reads with a backlog of 0", async () => {
    const b = backlog(1000);
    const pacer = new IntakePacer(b.read, { backlog: 0 });
    assert.equal(await pacer.admit(), 0);
    assert.equal(b.reads, 0);
  });

  it("keeps the last number when reading fails, and reads again", async () => {
    let fail = false;
    let reads = 0;
    const pacer = new IntakePacer(
      async () => {
        reads++;
        if (fail) throw new Error("database away");
        return 0;
      },
      { backlog: 1, refreshMs: 10, stallMs: 60_000 },
    );
    await pacer.admit();
    fail = true;
    const next = pacer.admit();
    assert.equal(await settlesWithin(next, 100), false, "one let in since the last good read: the next waits");
    assert.ok(reads >= 3, `tried again (${reads} reads)`);
    fail = false;
    assert.equal(await settlesWithin(next, 500), true, "in once a read says so");
  });
});
