// Summarises a V8 CPU profile (.cpuprofile, as `node --cpu-prof` writes it, e.g. from
// `node bench/documents.ts --profile`): where the process spent its time, by function and by
// package, optionally within a window of seconds since the profile started.
//
//   node bench/cpuprofile.ts <file.cpuprofile> [--from=S] [--to=S] [--top=N] [--timeline]
import { readFileSync } from "node:fs";

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: Node[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

const argv = process.argv.slice(2);
const file = argv.find((a) => !a.startsWith("--"));
if (!file) {
  console.error("usage: node bench/cpuprofile.ts <file.cpuprofile> [--from=S] [--to=S] [--top=N] [--timeline]");
  process.exit(2);
}
const opt = (name: string) => argv.find((a) => a.startsWith(`--${name}=`))?.split("=")[1];
const from = Number(opt("from") ?? 0) * 1e6;
const to = Number(opt("to") ?? Infinity) * 1e6;
const top = Number(opt("top") ?? 25);

const profile = JSON.parse(readFileSync(file, "utf8")) as Profile;
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map<number, number>();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

/** Where a frame's code lives: a package, Node itself, Kuvert's own code, or V8's pseudo-frames. */
function packageOf(url: string, name: string): string {
  if (!url) return name.startsWith("(") ? name : "(native)";
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (nm) return nm[1]!;
  if (url.startsWith("node:"))
    return url
      .replace(/^node:internal\/(deps\/)?/, "node:")
      .split("/")
      .slice(0, 2)
      .join("/");
  const own = /\/(appservice|test|bench)\/(.*)$/.exec(url);
  if (own) return `${own[1]}/${own[2]!.split("/")[0]}`;
  return url;
}

const selfByFunction = new Map<string, number>();
const selfByPackage = new Map<string, number>();
/** Time in a subtree: which of Kuvert's own functions were on the stack (inclusive). */
const inclusiveOwn = new Map<string, number>();
const perSecond = new Map<number, { busy: number; all: number }>();
let t = 0;
let total = 0;
for (let i = 0; i < profile.samples.length; i++) {
  const dt = profile.timeDeltas[i] ?? 0;
  t += dt;
  const second = Math.floor(t / 1e6);
  const node = byId.get(profile.samples[i]!)!;
  const name = node.callFrame.functionName || "(anonymous)";
  const bucket = perSecond.get(second) ?? { busy: 0, all: 0 };
  bucket.all += dt;
  if (name !== "(idle)" && name !== "(program)") bucket.busy += dt;
  perSecond.set(second, bucket);
  if (t < from || t > to) continue;
  total += dt;
  const key = `${name} ${packageOf(node.callFrame.url, name)}:${node.callFrame.lineNumber + 1}`;
  selfByFunction.set(key, (selfByFunction.get(key) ?? 0) + dt);
  const pkg = packageOf(node.callFrame.url, name);
  selfByPackage.set(pkg, (selfByPackage.get(pkg) ?? 0) + dt);
  const seen = new Set<string>();
  for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
    const f = byId.get(id)!.callFrame;
    if (!/\/appservice\//.test(f.url)) continue;
    const k = `${f.functionName || "(anonymous)"} ${packageOf(f.url, "")}:${f.lineNumber + 1}`;
    if (seen.has(k)) continue;
    seen.add(k);
    inclusiveOwn.set(k, (inclusiveOwn.get(k) ?? 0) + dt);
  }
}

const ms = (us: number) => `${(us / 1000).toFixed(0).padStart(7)} ms ${((100 * us) / total).toFixed(1).padStart(5)} %`;
const show = (title: string, m: Map<string, number>, n: number) => {
  console.log(`\n${title}`);
  for (const [k, v] of [...m].sort((a, b) => b[1] - a[1]).slice(0, n)) console.log(`${ms(v)}  ${k}`);
};
console.log(`${file}: ${((profile.endTime - profile.startTime) / 1e6).toFixed(1)} s profiled; window ${(from / 1e6).toFixed(1)}–${Number.isFinite(to) ? (to / 1e6).toFixed(1) : "end"} s = ${(total / 1e6).toFixed(1)} s`);
show("self time by package (idle and program included)", selfByPackage, top);
show("self time by function", selfByFunction, top);
show("Kuvert's own functions on the stack (inclusive)", inclusiveOwn, top);
if (argv.includes("--timeline")) {
  console.log("\nbusy share per second (JS thread):");
  const line: string[] = [];
  for (const [s, b] of [...perSecond].sort((a, b) => a[0] - b[0])) line.push(`${s}:${Math.round((100 * b.busy) / Math.max(1, b.all))}`);
  console.log(line.join(" "));
}
