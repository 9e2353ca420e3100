// The adaptive limit on documents in flight toward the homeserver (appservice/workers/limit.ts).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { AdaptiveLimit } from "../../appservice/workers/limit.ts";

/** Feeds `rounds` rounds of 20 samples of `ms` each. */
function feed(limit: AdaptiveLimit, ms: number, rounds: number): void {
  for (let i = 0; i < rounds * 20; i++) limit.observe(ms);
}

describe("adaptive limit on documents in flight", () => {
  it("starts at its floor and grows by one a round while latency stays near the best seen, up to its maximum", () => {
    const seen: number[] = [];
    const limit = new AdaptiveLimit({ floor: 4, max: 8, onChange: (n) => seen.push(n) });
    assert.equal(limit.current, 4);
    feed(limit, 10, 1);
    assert.equal(limit.current, 5, "one round at the best latency: one more");
    feed(limit, 15, 10);
    assert.equal(limit.current, 8, "never above the maximum");
    assert.deepEqual(seen, [4, 5, 6, 7, 8], "every change is told, once");
  });

  it("steps back by a quarter when latency climbs to several times the best, never below its floor", () => {
    const limit = new AdaptiveLimit({ floor: 4, max: 16 });
    feed(limit, 10, 5);
    assert.equal(limit.current, 9);
    feed(limit, 30, 1);
    assert.equal(limit.current, 9, "between twice and four times the best: stays");
    feed(limit, 50, 1);
    assert.equal(limit.current, 6, "over four times the best: three quarters");
    feed(limit, 50, 5);
    assert.equal(limit.current, 4, "latency alone never goes below the floor (the machine may just be busy)");
  });

  it("halves on 429 once a round, below the floor if need be, then climbs back one a round", () => {
    const limit = new AdaptiveLimit({ floor: 8, max: 16 });
    limit.throttled();
    limit.throttled();
    assert.equal(limit.current, 4, "two 429s in one round halve once");
    feed(limit, 100, 1);
    assert.equal(limit.current, 4, "the round with the 429 moves nothing");
    feed(limit, 100, 1);
    assert.equal(limit.current, 5, "below the floor it climbs back, whatever the latency");
    limit.throttled();
    limit.throttled();
    feed(limit, 100, 1);
    limit.throttled();
    assert.equal(limit.current, 1, "never below one");
  });

  it("follows a homeserver that got slower for good: the best latency is a recent one", () => {
    const limit = new AdaptiveLimit({ floor: 4, max: 64 });
    feed(limit, 10, 1);
    feed(limit, 100, 30);
    // After 500 samples of 100 ms the 10 ms are forgotten: 100 ms is the best, and growth resumes.
    const before = limit.current;
    feed(limit, 100, 2);
    assert.equal(limit.current, before + 2);
  });

  it("refuses bounds that cannot hold", () => {
    assert.throws(() => new AdaptiveLimit({ floor: 0, max: 8 }), /1 ≤ floor ≤ max/);
    assert.throws(() => new AdaptiveLimit({ floor: 9, max: 8 }), /1 ≤ floor ≤ max/);
  });
});
