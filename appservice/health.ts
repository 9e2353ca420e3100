// Readiness: can Kuvert do its work right now? Database, homeserver, scanner, mail. Checks of
// other services are cached for a few seconds, so that probing /readyz stays cheap.

export interface Readiness {
  check(): Promise<{ ready: boolean; checks: Record<string, { ok: boolean; detail: string }> }>;
}

export type Check = () => Promise<{ ok: boolean; detail: string }>;

export function readiness(checks: Record<string, Check>, cached: Set<string>, cacheMs = 5000): Readiness {
  const cache = new Map<string, { at: number; result: { ok: boolean; detail: string } }>();
  const run = async (name: string, check: Check) => {
    const hit = cache.get(name);
    if (cached.has(name) && hit && Date.now() - hit.at < cacheMs) return hit.result;
    let result: { ok: boolean; detail: string };
    try {
      result = await check();
    } catch (err) {
      result = { ok: false, detail: (err as Error).message };
    }
    cache.set(name, { at: Date.now(), result });
    return result;
  };
  return {
    async check() {
      const entries = await Promise.all(Object.entries(checks).map(async ([name, check]) => [name, await run(name, check)] as const));
      const results = Object.fromEntries(entries);
      return { ready: entries.every(([, r]) => r.ok), checks: results };
    },
  };
}
