// The adaptive limit on documents in flight toward the homeserver (appservice/workers/limit.ts).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { AdaptiveLimit } from "../../appservice/workers/limit.ts";

/** Feeds `rounds` rounds of 20 samples of `ms` each. */
function feed(limit: AdaptiveLimit, ms: number, rounds: number): void {
  for (let i = 0; i < rounds * 20; i++) limit.observe(ms);
}

describe("adaptive limit on documents in flight", () => {
  it("grows by one a round while latency stays near the best seen, up to its maximum", () => {
    const seen: number[] = [];
    const limit = new AdaptiveLimit({ initial: 4, min: 1, max: 8, onChange: (n) => seen.push(n) });
    assert.equal(limit.current, 4);
    feed(limit, 10, 1);
    assert.equal(limit.current, 5, "one round at the best latency: one more");
    feed(limit, 15, 10);
    assert.equal(limit.current, 8, "never above the maximum");
    assert.deepEqual(seen, [4, 5, 6, 7, 8], "every change is told, once");
  });

  it("backs off by a quarter when latency climbs to several times the best (the homeserver queues)", () => {
    const limit = new AdaptiveLimit({ initial: 8, min: 2, max: 16 });
    feed(limit, 10, 1);
    assert.equal(limit.current, 9);
    feed(limit, 30, 1);
    assert.equal(limit.current, 9, "between twice and four times the best: stays");
    feed(limit, 50, 1);
    assert.equal(limit.current, 6, "over four times the best: three quarters");
    feed(limit, 50, 5);
    assert.equal(limit.current, 2, "never below the minimum");
  });

  it("halves on 429 once a round, and that round's latency moves nothing", () => {
    const limit = new AdaptiveLimit({ initial: 8, min: 1, max: 16 });
    limit.throttled();
    limit.throttled();
    assert.equal(limit.current, 4, "two 429s in one round halve once");
    feed(limit, 10, 1);
    assert.equal(limit.current, 4, "the round with the 429 does not grow");
    feed(limit, 10, 1);
    assert.equal(limit.current, 5, "the next round may");
    limit.throttled();
    assert.equal(limit.current, 2);
  });

  it("follows a homeserver that got slower for good: the best latency is a recent one", () => {
    const limit = new AdaptiveLimit({ initial: 4, min: 1, max: 64 });
    feed(limit, 10, 1);
    feed(limit, 100, 30);
    // After 500 samples of 100 ms the 10 ms are forgotten: 100 ms is the best, and growth resumes.
    const before = limit.current;
    feed(limit, 100, 2);
    assert.equal(limit.current, before + 2);
  });

  it("refuses bounds that cannot hold", () => {
    assert.throws(() => new AdaptiveLimit({ initial: 4, min: 0, max: 8 }), /1 ≤ min ≤ initial ≤ max/);
    assert.throws(() => new AdaptiveLimit({ initial: 9, min: 1, max: 8 }), /1 ≤ min ≤ initial ≤ max/);
  });
});
