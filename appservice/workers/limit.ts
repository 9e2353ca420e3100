// How many items a worker has in flight toward the homeserver, adapted to its answers instead of
// fixed. From the configured number (the floor) it probes upward: one more per round, kept while
// the homeserver got through more with it, taken back when it did not. What the homeserver gets
// through is Little's law: items in flight ÷ latency, latency measured on requests of one size
// (room events), so a large upload does not read as a slow homeserver. A 429 halves the limit,
// below the floor if need be, and it climbs back one per round.
//
// Why throughput and not latency alone: on a machine the homeserver shares, latency rises with
// everyone's load, and a rule that backs off when latency climbs (the first version of this
// limit: back to the floor at four times the best latency seen) held the floor exactly while
// more in flight would have helped most. Synapse gets through more with more in flight even
// when its latency climbs, and spends less CPU per event doing so (bench/README.md). A
// homeserver that is merely queueing shows no gain, and the step is taken back.

/** Samples that make one round: the limit moves at most once per round. */
const roundSamples = 20;
/** A step up is kept when throughput rose by at least this share; less is noise, or queueing. */
const minGain = 0.05;
/** After a step up that was taken back, this many rounds pass before the next probe. */
const holdRounds = 5;

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
  /** Items in flight when each of this round's samples came in. */
  #inFlightSum = 0;
  #inFlightMax = 0;
  /** The round before: its limit and the throughput it reached. */
  #previous: { limit: number; throughput: number } | undefined;
  #hold = 0;
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

  /** A request of the kind measured took `ms` milliseconds, while `inFlight` items were on their way. */
  observe(ms: number, inFlight: number): void {
    this.#recent.push(ms);
    this.#inFlightSum += inFlight;
    this.#inFlightMax = Math.max(this.#inFlightMax, inFlight);
    if (this.#recent.length < roundSamples) return;
    const median = Math.max(0.1, [...this.#recent].sort((a, b) => a - b)[this.#recent.length >> 1]!);
    const throughput = this.#inFlightSum / this.#recent.length / median;
    // Only a round that used its limit says anything about a larger one.
    const saturated = this.#inFlightMax >= this.#limit;
    this.#recent.length = 0;
    this.#inFlightSum = 0;
    this.#inFlightMax = 0;
    if (this.#throttledInRound) {
      this.#throttledInRound = false;
      this.#previous = undefined;
      return;
    }
    const previous = this.#previous;
    this.#previous = { limit: this.#limit, throughput };
    if (this.#limit < this.#bounds.floor) return this.#set(this.#limit + 1);
    if (previous && this.#limit > previous.limit) {
      // The last round was a probe: keep it and go on only if it paid.
      if (throughput >= previous.throughput * (1 + minGain)) return this.#set(this.#limit + 1);
      this.#hold = holdRounds;
      this.#previous = undefined;
      return this.#set(Math.max(this.#bounds.floor, previous.limit));
    }
    if (this.#hold > 0) {
      this.#hold--;
      return;
    }
    if (saturated) this.#set(this.#limit + 1);
  }

  /** The homeserver asked to slow down (429): half as many, at most once a round. */
  throttled(): void {
    if (this.#throttledInRound) return;
    this.#throttledInRound = true;
    this.#recent.length = 0;
    this.#inFlightSum = 0;
    this.#inFlightMax = 0;
    this.#set(Math.floor(this.#limit / 2));
  }

  #set(limit: number): void {
    const next = Math.min(this.#bounds.max, Math.max(1, limit));
    if (next === this.#limit) return;
    this.#limit = next;
    this.#bounds.onChange?.(next);
  }
}
