// A diagnostic, not part of Kuvert: preloaded into the Kuvert process by
// `node bench/documents.ts --memory-probe` (NODE_OPTIONS=--import), it writes one JSON line
// every 250 ms to $KUVERT_BENCH_MEMORY_PROBE: RSS split into V8 heap (used, total), external
// memory and array buffers (Buffers), and V8's heap spaces. It answers "what is the memory?"
// where /proc only says "how much".
import { appendFileSync } from "node:fs";
import v8 from "node:v8";

const file = process.env.KUVERT_BENCH_MEMORY_PROBE;
if (file) {
  const sample = (label: string) => {
    const m = process.memoryUsage();
    const spaces = Object.fromEntries(v8.getHeapSpaceStatistics().map((s) => [s.space_name, s.space_used_size]));
    appendFileSync(file, JSON.stringify({ t: Date.now(), label, rss: m.rss, heapTotal: m.heapTotal, heapUsed: m.heapUsed, external: m.external, arrayBuffers: m.arrayBuffers, spaces }) + "\n");
  };
  sample("preload");
  setInterval(() => sample("tick"), 250).unref();
}
