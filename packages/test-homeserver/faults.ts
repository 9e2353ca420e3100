export interface HoldHandle {
  /** Lets every held request (and every later one) through; held requests are then processed. */
  release(): void;
  /** Number of requests currently held. */
  held(): number;
  /** Resolves once at least `n` requests are held (default 1); rejects after `timeoutMs` (default 5000). */
  waitForHeld(n?: number, timeoutMs?: number): Promise<void>;
}

export interface FaultInjector {
  hold(method: string, path: RegExp): HoldHandle;
  failNext(method: string, path: RegExp, count: number, status: number, body: object): void;
  /** Rate limits matching requests as Synapse's ratelimiter does; returns a handle that counts the refusals. */
  rateLimit(method: string, path: RegExp, limits: RateLimits): RateLimitHandle;
  requests(method: string, path: RegExp): number;
  clear(): void;
}

/** A rate limit like Synapse's `rc_message`: `burst` actions at once, refilled at `perSecond`. */
export interface RateLimits {
  perSecond: number;
  burst: number;
}

export interface RateLimitHandle {
  /** Requests refused with 429 so far. */
  refused(): number;
  /** Removes the limit. */
  remove(): void;
}

/** What the server does with a request after the fault injector has seen it. */
export type Interception = { kind: "pass" } | { kind: "reply"; status: number; body: object; headers?: Record<string, string> } | { kind: "drop" };

/**
 * The leaky bucket of Synapse's `Ratelimiter` (synapse/api/ratelimiting.py): an action is allowed
 * while the actions performed, drained at `perSecond`, stay within `burst`; a refused one is told
 * when the next would be allowed. The answer is CS API §"Rate limiting" (Matrix 1.10+): 429 with
 * `M_LIMIT_EXCEEDED`, `retry_after_ms` in the body and a `Retry-After` header in seconds.
 */
class RateLimit implements RateLimitHandle {
  readonly method: string;
  readonly path: RegExp;
  readonly limits: RateLimits;
  removed = false;
  private performed = 0;
  private start = Date.now() / 1000;
  private refusals = 0;

  constructor(method: string, path: RegExp, limits: RateLimits) {
    this.method = method;
    this.path = path;
    this.limits = limits;
  }

  /** Null when allowed, else the milliseconds until an action would be allowed. */
  take(): number | null {
    const now = Date.now() / 1000;
    const { perSecond, burst } = this.limits;
    this.performed = Math.max(0, this.performed - (now - this.start) * perSecond);
    this.start = now;
    if (this.performed + 1 <= burst) {
      this.performed += 1;
      return null;
    }
    this.refusals++;
    const allowedAt = now + (this.performed - burst + 1) / perSecond;
    return Math.max(1, Math.ceil(1000 * (allowedAt - now)));
  }

  refused(): number {
    return this.refusals;
  }

  remove(): void {
    this.removed = true;
  }
}

interface Seen {
  method: string;
  rawPath: string;
  path: string;
}

function matches(method: string, pattern: RegExp, seen: Seen): boolean {
  if (method !== "*" && method.toUpperCase() !== seen.method) return false;
  pattern.lastIndex = 0;
  if (pattern.test(seen.rawPath)) return true;
  pattern.lastIndex = 0;
  return pattern.test(seen.path);
}

class Hold implements HoldHandle {
  readonly method: string;
  readonly path: RegExp;
  released = false;
  private readonly waiting: Array<(outcome: "pass" | "drop") => void> = [];
  private readonly watchers: Array<(dropped: boolean) => void> = [];

  constructor(method: string, path: RegExp) {
    this.method = method;
    this.path = path;
  }

  park(): Promise<"pass" | "drop"> {
    return new Promise((resolve) => {
      this.waiting.push(resolve);
      for (const watcher of this.watchers.splice(0)) watcher(false);
    });
  }

  release(): void {
    this.released = true;
    for (const resolve of this.waiting.splice(0)) resolve("pass");
  }

  drop(): void {
    this.released = true;
    for (const resolve of this.waiting.splice(0)) resolve("drop");
    for (const watcher of this.watchers.splice(0)) watcher(true);
  }

  held(): number {
    return this.waiting.length;
  }

  waitForHeld(n = 1, timeoutMs = 5000): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        const i = this.watchers.indexOf(check);
        if (i >= 0) this.watchers.splice(i, 1);
        reject(new Error(`waitForHeld: ${this.waiting.length} of ${n} requests held after ${timeoutMs} ms`));
      }, timeoutMs);
      const check = (dropped: boolean): void => {
        if (dropped) {
          clearTimeout(timer);
          reject(new Error("waitForHeld: the homeserver stopped"));
        } else if (this.waiting.length >= n) {
          clearTimeout(timer);
          resolve();
        } else {
          this.watchers.push(check);
        }
      };
      check(false);
    });
  }
}

interface FailRule {
  method: string;
  path: RegExp;
  remaining: number;
  status: number;
  body: object;
}

/**
 * Holds, fails and counts requests by method and path. A path pattern is tested against both the
 * percent-encoded and the decoded path. Held requests are processed on release() whether or not the
 * client is still connected (Synapse does not cancel a send when the client goes away); at stop() they
 * are discarded unprocessed.
 */
export class Faults implements FaultInjector {
  private seen: Seen[] = [];
  private fails: FailRule[] = [];
  private holds: Hold[] = [];
  private limits: RateLimit[] = [];

  hold(method: string, path: RegExp): HoldHandle {
    const hold = new Hold(method, path);
    this.holds.push(hold);
    return hold;
  }

  failNext(method: string, path: RegExp, count: number, status: number, body: object): void {
    this.fails.push({ method, path, remaining: count, status, body });
  }

  rateLimit(method: string, path: RegExp, limits: RateLimits): RateLimitHandle {
    const limit = new RateLimit(method, path, limits);
    this.limits.push(limit);
    return limit;
  }

  requests(method: string, path: RegExp): number {
    return this.seen.filter((seen) => matches(method, path, seen)).length;
  }

  clear(): void {
    for (const hold of this.holds) hold.release();
    this.holds = [];
    this.fails = [];
    this.limits = [];
    this.seen = [];
  }

  /** Discards every held request without processing it. */
  dropAll(): void {
    for (const hold of this.holds) hold.drop();
    this.holds = [];
  }

  async intercept(method: string, rawPath: string): Promise<Interception> {
    let path = rawPath;
    try {
      path = decodeURIComponent(rawPath);
    } catch {
      // keep the raw path
    }
    const seen: Seen = { method, rawPath, path };
    this.seen.push(seen);
    const fail = this.fails.find((rule) => rule.remaining > 0 && matches(rule.method, rule.path, seen));
    if (fail) {
      fail.remaining--;
      return { kind: "reply", status: fail.status, body: fail.body };
    }
    this.limits = this.limits.filter((l) => !l.removed);
    for (const limit of this.limits) {
      if (!matches(limit.method, limit.path, seen)) continue;
      const waitMs = limit.take();
      if (waitMs !== null) {
        return {
          kind: "reply",
          status: 429,
          body: { errcode: "M_LIMIT_EXCEEDED", error: "Too Many Requests", retry_after_ms: waitMs },
          headers: { "Retry-After": String(Math.ceil(waitMs / 1000)) },
        };
      }
    }
    const hold = this.holds.find((h) => !h.released && matches(h.method, h.path, seen));
    if (hold) return (await hold.park()) === "pass" ? { kind: "pass" } : { kind: "drop" };
    return { kind: "pass" };
  }
}
