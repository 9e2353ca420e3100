// Each service of a benchmark in a CPU control group of its own, with equal weight, as the
// deployment has it: Docker puts every container in a cgroup of its own (cpu.shares 1024 on
// cgroup v1, cpu.weight 100 on v2), so when the machine is busy the kernel shares the cores
// between the containers first, and only then between the threads inside each. Without groups,
// every thread on the machine competes with every other: clamd's scanning threads and Kuvert's
// thread pool together outweigh Synapse's one Python thread, which a deployment never sees.
//
// Needs a writable cpu controller (root, and cgroup v1's /sys/fs/cgroup/cpu or v2's
// /sys/fs/cgroup with "cpu" among its controllers); without one the benchmark says so and runs
// with every process in the group it started in.
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export interface CpuGroups {
  /** How the groups are made, for the report: "cgroup v1", "cgroup v2", or why there are none. */
  readonly how: string;
  readonly active: boolean;
  /** Moves these processes (with all their threads) into the group `name`, made on first use. */
  put(name: string, pids: number[]): void;
  /** Moves every process back to the top group (where the benchmark's processes start) and removes the groups. */
  release(): void;
}

export function cpuGroups(label: string): CpuGroups {
  const base = cpuControllerRoot();
  if (typeof base !== "string") return inactive(base.why);
  const root = join(base, `kuvert-bench-${label}-${process.pid}`);
  try {
    mkdirSync(root, { recursive: true });
    // cgroup v2 hands the controller down one level at a time.
    if (base === "/sys/fs/cgroup") for (const dir of [base, root]) writeFileSync(join(dir, "cgroup.subtree_control"), "+cpu");
  } catch (e) {
    return inactive(`cannot make a cpu group under ${base}: ${(e as Error).message}`);
  }
  const made = new Map<string, string>();
  return {
    how: base === "/sys/fs/cgroup" ? "cgroup v2" : "cgroup v1",
    active: true,
    put(name, pids) {
      let dir = made.get(name);
      if (!dir) {
        dir = join(root, name);
        mkdirSync(dir, { recursive: true });
        made.set(name, dir);
      }
      for (const pid of pids) {
        try {
          writeFileSync(join(dir, "cgroup.procs"), String(pid));
        } catch {
          // ended meanwhile
        }
      }
    },
    release() {
      for (const dir of made.values()) {
        for (const pid of readFileSync(join(dir, "cgroup.procs"), "latin1").split("\n").filter(Boolean)) {
          try {
            writeFileSync(join(base, "cgroup.procs"), pid);
          } catch {
            // ended meanwhile
          }
        }
      }
      // A group that cannot be removed (a process in it that could not be moved) stays; stopping
      // the stack must not fail for it.
      for (const dir of [...made.values(), root]) {
        try {
          rmdirSync(dir);
        } catch {
          // EBUSY
        }
      }
      made.clear();
    },
  };
}

function inactive(why: string): CpuGroups {
  return { how: `none (${why})`, active: false, put: () => undefined, release: () => undefined };
}

/** Where a cpu controller can be written to, or why not. */
function cpuControllerRoot(): string | { why: string } {
  if (existsSync("/sys/fs/cgroup/cpu/cgroup.procs") && writable("/sys/fs/cgroup/cpu")) return "/sys/fs/cgroup/cpu";
  const v2 = "/sys/fs/cgroup/cgroup.controllers";
  if (existsSync(v2) && readFileSync(v2, "latin1").split(/\s+/).includes("cpu") && writable("/sys/fs/cgroup")) return "/sys/fs/cgroup";
  return { why: "no writable cpu controller (cgroup v1 /sys/fs/cgroup/cpu or v2 /sys/fs/cgroup)" };
}

function writable(dir: string): boolean {
  const probe = join(dir, `kuvert-bench-probe-${process.pid}`);
  try {
    mkdirSync(probe);
    rmdirSync(probe);
    return true;
  } catch {
    return false;
  }
}
