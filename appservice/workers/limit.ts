// How many items a worker has in flight toward the homeserver, adapted to its answers instead of
// fixed. From the configured number (the floor) it adds one per round while the homeserver's
// latency stays near the best seen, and steps back toward the floor when latency climbs (the
// homeserver is queueing, more in flight only waits longer); a 429 halves it, below the floor if
// need be, and it climbs back one per round. Latency alone never takes it below the floor: on a
// machine the homeserver shares, latency also rises with everyone's load, and giving up
// concurrency for that only loses throughput (measured: bench/README.md). Latency is measured on
// requests of one size (room events), so a large upload does not read as a slow homeserver.

/** Samples that make one round: the limit moves at most once per round. */
const roundSamples = 20;
/** The best latency is the lowest of this many recent samples, so it follows a homeserver that got slower for good. */
const baselineSamples = 500;
/** A round's median under this many times the best latency: room for one more. */
const growBelow = 2;
/** A round's median over this many times the best latency: the homeserver is queueing, back off. */
const shrinkAbove = 4;

export interface LimitBounds {
  /** Where the limit starts, and below which only a 429 takes it. */
  floor: number;
  max: number;
  /** Told each new limit (a gauge, for instance). */
  onChange?: (limit: number) => void;
}

export class AdaptiveLimit {
  readonly #bounds: LimitBounds;
  #limit: number;
  readonly #recent: number[] = [];
  readonly #history: number[] = [];
  /** A 429 came in this round: latency does not move the limit until the next. */
  #throttledInRound = false;

  constructor(bounds: LimitBounds) {
    if (!(bounds.floor >= 1 && bounds.floor <= bounds.max)) throw new Error(`an adaptive limit needs 1 ≤ floor ≤ max (got ${bounds.floor}, ${bounds.max})`);
    this.#bounds = bounds;
    this.#limit = bounds.floor;
    bounds.onChange?.(this.#limit);
  }

  /** How many items may be in flight now. */
  get current(): number {
    return this.#limit;
  }

  /** A request of the kind measured took `ms` milliseconds. */
  observe(ms: number): void {
    this.#recent.push(ms);
    this.#history.push(ms);
    if (this.#history.length > baselineSamples) this.#history.shift();
    if (this.#recent.length < roundSamples) return;
    const median = [...this.#recent].sort((a, b) => a - b)[this.#recent.length >> 1]!;
    const best = Math.max(1, Math.min(...this.#history));
    this.#recent.length = 0;
    if (this.#throttledInRound) {
      this.#throttledInRound = false;
      return;
    }
    const { floor } = this.#bounds;
    if (this.#limit < floor) this.#set(this.#limit + 1);
    else if (median > shrinkAbove * best) this.#set(Math.max(floor, Math.floor(this.#limit * 0.75)));
    else if (median < growBelow * best) this.#set(this.#limit + 1);
  }

  /** The homeserver asked to slow down (429): half as many, at most once a round. */
  throttled(): void {
    if (this.#throttledInRound) return;
    this.#throttledInRound = true;
    this.#recent.length = 0;
    this.#set(Math.floor(this.#limit / 2));
  }

  #set(limit: number): void {
    const next = Math.min(this.#bounds.max, Math.max(1, limit));
    if (next === this.#limit) return;
    this.#limit = next;
    this.#bounds.onChange?.(next);
  }
}
