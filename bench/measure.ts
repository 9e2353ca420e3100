// Memory and CPU of processes, read from /proc (Linux): VmRSS sampled every 100 ms, VmHWM
// (the kernel's own peak of the resident set), and user+system CPU time.
import { readdirSync, readFileSync, writeFileSync } from "node:fs";

const MiB = 1024 * 1024;
/** USER_HZ: the unit of utime and stime in /proc/<pid>/stat; 100 on every Linux in practice. */
const clockTicks = 100;

export interface MemoryStatus {
  rssBytes: number;
  hwmBytes: number;
}

export function memoryOf(pid: number): MemoryStatus | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/status`, "latin1");
  } catch {
    return undefined;
  }
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(text)?.[1] ?? NaN) * 1024;
  return { rssBytes: kb("VmRSS"), hwmBytes: kb("VmHWM") };
}

/**
 * User + system CPU seconds the process used so far (all its threads); with `reapedChildren`,
 * also those of its children that ended and were waited for (cutime, cstime).
 */
export function cpuSecondsOf(pid: number, reapedChildren = false): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // After the command: state(3) ppid(4) … utime(14) stime(15) cutime(16) cstime(17); fields[0] is field 3.
    const own = Number(fields[11]) + Number(fields[12]);
    const children = reapedChildren ? Number(fields[13]) + Number(fields[14]) : 0;
    return (own + children) / clockTicks;
  } catch {
    return 0;
  }
}

/**
 * When the process started, in epoch milliseconds (to 10 ms): its start time in clock ticks since
 * boot (/proc/<pid>/stat, field 22) after the boot time (/proc/stat, btime). NaN when unknown.
 */
export function processStartEpochMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
    const startTicks = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]);
    const btime = Number(/^btime (\d+)$/m.exec(readFileSync("/proc/stat", "latin1"))?.[1] ?? NaN);
    return btime * 1000 + (startTicks / clockTicks) * 1000;
  } catch {
    return NaN;
  }
}

/**
 * Resets VmHWM to the current RSS (`echo 5 > /proc/<pid>/clear_refs`, Linux ≥ 4.0), so a
 * scenario's peak is its own and not the peak of an earlier one. Answers whether it worked;
 * if not, the sampled maximum of VmRSS is the only peak per scenario.
 */
export function resetPeak(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, "5");
    return true;
  } catch {
    return false;
  }
}

export interface MemoryReport {
  /** VmRSS when the scenario started. */
  startRssBytes: number;
  /** The largest VmRSS among the 100 ms samples. */
  sampledPeakRssBytes: number;
  /** VmHWM at the end: the kernel's peak RSS since the reset (or since the process started). */
  hwmBytes: number;
  /** Whether VmHWM was reset at the start (true: hwmBytes is this scenario's peak). */
  hwmReset: boolean;
  samples: number;
  /** The VmRSS timeline (ms since start, bytes), every sample. */
  timeline: [number, number][];
}

/** Samples one process's VmRSS every `intervalMs` until stop(). */
export class MemorySampler {
  readonly #pid: number;
  readonly #timer: NodeJS.Timeout;
  readonly #started = performance.now();
  readonly #report: MemoryReport;

  constructor(pid: number, intervalMs = 100) {
    this.#pid = pid;
    const hwmReset = resetPeak(pid);
    const first = memoryOf(pid);
    this.#report = { startRssBytes: first?.rssBytes ?? NaN, sampledPeakRssBytes: first?.rssBytes ?? 0, hwmBytes: first?.hwmBytes ?? NaN, hwmReset, samples: 0, timeline: [] };
    this.#timer = setInterval(() => this.#sample(), intervalMs);
  }

  #sample(): void {
    const m = memoryOf(this.#pid);
    if (!m) return;
    this.#report.samples++;
    this.#report.sampledPeakRssBytes = Math.max(this.#report.sampledPeakRssBytes, m.rssBytes);
    this.#report.hwmBytes = m.hwmBytes;
    this.#report.timeline.push([Math.round(performance.now() - this.#started), m.rssBytes]);
  }

  stop(): MemoryReport {
    clearInterval(this.#timer);
    this.#sample();
    return this.#report;
  }
}

/** CPU seconds the whole machine was busy so far, all cores together, and of it the interrupt handling (/proc/stat). */
export function machineBusySeconds(): { busy: number; interrupts: number } {
  try {
    const line = readFileSync("/proc/stat", "latin1").split("\n")[0]!;
    // cpu  user nice system idle iowait irq softirq steal guest guest_nice (guest is in user already)
    const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = line.trim().split(/\s+/).slice(1).map(Number);
    return { busy: (user + nice + system + irq + softirq + steal) / clockTicks, interrupts: (irq + softirq) / clockTicks };
  } catch {
    return { busy: NaN, interrupts: NaN };
  }
}

/**
 * CPU seconds the kernel's own threads (children of kthreadd: writeback, ksoftirqd, …) used so
 * far, by thread id: kernel workers come and go during a run, so an interval compares thread by
 * thread (a sum over all would fall when one exits).
 */
export function kernelThreadSeconds(): Map<string, number> {
  const seconds = new Map<string, number>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "latin1");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (fields[1] === "2") seconds.set(entry, (Number(fields[11]) + Number(fields[12])) / clockTicks);
    } catch {
      // gone meanwhile
    }
  }
  return seconds;
}

/** What the kernel's threads used since `before`: each thread's growth (a new one counts whole; one that ended is not seen). */
function kernelThreadSecondsSince(before: Map<string, number>): number {
  let total = 0;
  for (const [tid, now] of kernelThreadSeconds()) total += Math.max(0, now - (before.get(tid) ?? 0));
  return total;
}

/** CPU seconds per named process group over an interval. */
export class CpuMeter {
  readonly #groups: Record<string, () => number>;
  readonly #start: Record<string, number> = {};
  readonly #self0 = process.cpuUsage();
  readonly #machine0 = machineBusySeconds();
  readonly #kthreads0 = kernelThreadSeconds();

  /** `groups`: name → the CPU seconds the group used so far (asked at the start and at the end). */
  constructor(groups: Record<string, () => number>) {
    this.#groups = groups;
    for (const [name, seconds] of Object.entries(groups)) this.#start[name] = seconds();
  }

  /**
   * Seconds of CPU per group since the start; "bench" is this process (driver + test
   * homeserver); "kernel" is interrupt handling and the kernel's threads (much of it on behalf
   * of the stack: loopback networking, writing files back to disk); "other" is what the rest of
   * the machine used meanwhile, other processes: when it is large, the figures are disturbed.
   */
  stop(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [name, seconds] of Object.entries(this.#groups)) out[name] = seconds() - (this.#start[name] ?? 0);
    const self = process.cpuUsage(this.#self0);
    out.bench = (self.user + self.system) / 1e6;
    const machine = machineBusySeconds();
    out.kernel = machine.interrupts - this.#machine0.interrupts + kernelThreadSecondsSince(this.#kthreads0);
    out.other = Math.max(0, machine.busy - this.#machine0.busy - sum(Object.values(out)));
    return out;
  }
}

export function sum(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0);
}

export function mib(bytes: number): string {
  return (bytes / MiB).toFixed(1);
}

/** Kuvert's requests to the homeserver so far, by method: how many, and their seconds in all. */
export type RequestStats = Record<string, { count: number; seconds: number }>;

/**
 * Reads kuvert_homeserver_request_duration_seconds (_count and _sum, all outcomes) from Kuvert's
 * Prometheus metrics. Empty when the metrics cannot be read.
 */
export async function homeserverRequestStats(metricsUrl: string): Promise<RequestStats> {
  const stats: RequestStats = {};
  let text: string;
  try {
    const res = await fetch(metricsUrl);
    if (!res.ok) return stats;
    text = await res.text();
  } catch {
    return stats;
  }
  for (const line of text.split("\n")) {
    const m = /^kuvert_homeserver_request_duration_seconds_(count|sum)\{([^}]*)\} (\S+)$/.exec(line);
    if (!m) continue;
    const method = /method="([^"]+)"/.exec(m[2]!)?.[1] ?? "?";
    const entry = (stats[method] ??= { count: 0, seconds: 0 });
    if (m[1] === "count") entry.count += Number(m[3]);
    else entry.seconds += Number(m[3]);
  }
  return stats;
}

/**
 * Kuvert's limit on documents in flight toward the homeserver (the gauge
 * kuvert_documents_in_flight_limit), read once a second until `stop`: the lowest, the highest and
 * the time-weighted mean. It shows whether the adaptive limit used the homeserver's concurrency.
 */
export function sampleInFlightLimit(metricsUrl: string): { stop(): { min: number; max: number; mean: number } | undefined } {
  const seen: number[] = [];
  const read = async () => {
    const text = await fetch(metricsUrl)
      .then((res) => (res.ok ? res.text() : ""))
      .catch(() => "");
    const m = /^kuvert_documents_in_flight_limit(?:\{[^}]*\})? (\S+)$/m.exec(text);
    if (m) seen.push(Number(m[1]));
  };
  void read();
  const timer = setInterval(() => void read(), 1000);
  return {
    stop() {
      clearInterval(timer);
      if (seen.length === 0) return undefined;
      return { min: Math.min(...seen), max: Math.max(...seen), mean: sum(seen) / seen.length };
    },
  };
}

/** What happened between two readings of homeserverRequestStats. */
export function requestStatsSince(before: RequestStats, after: RequestStats): RequestStats {
  const out: RequestStats = {};
  for (const [method, a] of Object.entries(after)) {
    const b = before[method] ?? { count: 0, seconds: 0 };
    if (a.count - b.count > 0) out[method] = { count: a.count - b.count, seconds: a.seconds - b.seconds };
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// The benchmarks' small shared helpers

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** One line of progress with the time of day. */
export function log(message: string): void {
  console.log(`[${new Date().toISOString().slice(11, 19)}] ${message}`);
}

/** Runs `work` over `items`, at most `concurrency` at a time, in order of the items. */
export async function pool<T>(items: T[], concurrency: number, work: (item: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        await work(items[i]!, i);
      }
    }),
  );
}

/** The p-th percentile of xs (nearest rank); NaN for none. */
export function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))] ?? NaN;
}
