// The adaptive limit on documents in flight toward the homeserver (appservice/workers/limit.ts).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { AdaptiveLimit } from "../../appservice/workers/limit.ts";

/**
 * Feeds `rounds` rounds of 20 samples, as a homeserver whose latency at `n` items in flight is
 * `latency(n)` would answer, with the limit used in full (or with `inFlight` items, when given).
 */
function feed(limit: AdaptiveLimit, latency: (n: number) => number, rounds: number, inFlight?: number): void {
  for (let r = 0; r < rounds; r++) {
    const n = inFlight ?? limit.current;
    for (let i = 0; i < 20; i++) limit.observe(latency(n), n);
  }
}

/** A homeserver with room to spare: the same latency whatever is in flight, so throughput grows with it. */
const idle = () => 10;
/** A homeserver that only queues: latency in proportion to what is in flight, throughput flat. */
const queueing = (n: number) => 10 * n;

describe("adaptive limit on documents in flight", () => {
  it("starts at its floor and grows by one a round while throughput grows with it, up to its maximum", () => {
    const seen: number[] = [];
    const limit = new AdaptiveLimit({ floor: 4, max: 8, onChange: (n) => seen.push(n) });
    assert.equal(limit.current, 4);
    feed(limit, idle, 1);
    assert.equal(limit.current, 5, "one round at the floor: a probe of one more");
    feed(limit, idle, 10);
    assert.equal(limit.current, 8, "never above the maximum");
    assert.deepEqual(seen, [4, 5, 6, 7, 8], "every change is told, once");
  });

  it("grows on a busy machine where latency is many times the best seen, as long as more in flight gets more through", () => {
    const limit = new AdaptiveLimit({ floor: 4, max: 16 });
    feed(limit, idle, 1);
    // The machine gets busy: latency is ten times what it was, and rises with what is in
    // flight, but less than in proportion (the homeserver batches concurrent events). The probe
    // under way when the load came is taken back (its round looked worse); the next ones pay.
    feed(limit, (n) => 100 + 5 * n, 14);
    assert.ok(limit.current >= 9, `still growing under load (at ${limit.current})`);
  });

  it("takes back a step that got nothing more through, and waits before the next probe", () => {
    const limit = new AdaptiveLimit({ floor: 4, max: 16 });
    feed(limit, queueing, 1);
    assert.equal(limit.current, 5, "probes one more");
    feed(limit, queueing, 1);
    assert.equal(limit.current, 4, "the probe brought no more throughput: back");
    feed(limit, queueing, 5);
    assert.equal(limit.current, 4, "holds for five rounds");
    feed(limit, queueing, 1);
    assert.equal(limit.current, 5, "then probes again");
    feed(limit, queueing, 30);
    assert.ok(limit.current <= 5, `a queueing homeserver never gets more than one probe above the floor (at ${limit.current})`);
  });

  it("does not probe while it has room it does not use", () => {
    const limit = new AdaptiveLimit({ floor: 4, max: 16 });
    feed(limit, idle, 10, 2);
    assert.equal(limit.current, 4, "two in flight of four allowed: nothing to learn about five");
  });

  it("halves on 429 once a round, below the floor if need be, then climbs back one a round", () => {
    const limit = new AdaptiveLimit({ floor: 8, max: 16 });
    limit.throttled();
    limit.throttled();
    assert.equal(limit.current, 4, "two 429s in one round halve once");
    feed(limit, () => 100, 1);
    assert.equal(limit.current, 4, "the round with the 429 moves nothing");
    feed(limit, () => 100, 1);
    assert.equal(limit.current, 5, "below the floor it climbs back, whatever the latency");
    limit.throttled();
    limit.throttled();
    feed(limit, () => 100, 1);
    limit.throttled();
    assert.equal(limit.current, 1, "never below one");
  });

  it("refuses bounds that cannot hold", () => {
    assert.throws(() => new AdaptiveLimit({ floor: 0, max: 8 }), /1 ≤ floor ≤ max/);
    assert.throws(() => new AdaptiveLimit({ floor: 9, max: 8 }), /1 ≤ floor ≤ max/);
  });
});
