// `npm test`: starts what the suites need that is not given (PostgreSQL), runs the suites with
// Node's test runner, and stops what it started. Two passes:
//   1. every suite (the packages' own included), on the test homeserver of
//      packages/test-homeserver (it can fail on demand);
//   2. every end-to-end suite again, each on a fresh real Synapse, when there is one: the
//      installation KUVERT_TEST_SYNAPSE names, or ../shared/synapse beside this checkout.
//      Tests named "(test homeserver: …)" need the fixture's faults or forms; they run in pass 1 only.
//   npm test                        both passes
//   npm test -- test/e2e/x.test.ts  some suites (both passes)
// Environment: KUVERT_TEST_HOMESERVER=fixture or =synapse runs one pass only;
// KUVERT_TEST_DATABASE_URL uses an existing PostgreSQL (superuser URL) instead of starting one;
// KUVERT_TEST_HOMESERVER_URL and friends run pass 2 against a homeserver already running (README).
import { execFileSync, spawn } from "node:child_process";
import { chmodSync, existsSync, globSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startPostgres, type PostgresCluster } from "./support/postgres.ts";

const root = join(import.meta.dirname, "..");
process.chdir(root);
const requested = process.argv.slice(2);
const files = requested.length > 0 ? requested : [...globSync("test/**/*.test.ts"), ...globSync("packages/*/test/**/*.test.ts")].sort();

// Each suite clears its own logs and work folder, so runs side by side do not disturb each other.
mkdirSync(join(root, "test-artifacts", "logs"), { recursive: true });

// The suites' temporary files go into a folder of this run's own, removed at the end; what a suite
// did not clean up itself is named, so that it gets fixed (test/support/tmp.ts cleans up).
const runTmp = mkdtempSync(join(tmpdir(), "kuvert-test-run-"));
// Others may pass through (not list): a suite's own PostgreSQL runs as the postgres user when root.
chmodSync(runTmp, 0o711);

let cluster: PostgresCluster | undefined;
// matrix-appservice-bridge's dependencies still call util._extend; the warning is noise here.
const env: NodeJS.ProcessEnv = { ...process.env, TMPDIR: runTmp, NODE_OPTIONS: [process.env.NODE_OPTIONS, "--disable-warning=DEP0060"].filter(Boolean).join(" ") };
if (!env.KUVERT_TEST_DATABASE_URL) {
  cluster = await startPostgres();
  env.KUVERT_TEST_DATABASE_URL = cluster.url;
  process.stdout.write(`PostgreSQL for the tests: ${cluster.url}\n`);
}

const stopServices = () => {
  cluster?.stop();
  cluster = undefined;
  if (!existsSync(runTmp)) return;
  const left = readdirSync(runTmp);
  if (left.length > 0) process.stdout.write(`The suites left these in $TMPDIR (removed now): ${left.join(", ")}\n`);
  rmSync(runTmp, { recursive: true, force: true });
};
process.on("exit", stopServices);
for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, () => process.exit(130));

/** The Synapse installation for pass 2: KUVERT_TEST_SYNAPSE, or the kit beside this checkout (set up on first use). */
function findSynapse(): string | undefined {
  if (env.KUVERT_TEST_SYNAPSE) return env.KUVERT_TEST_SYNAPSE;
  const kit = join(root, "..", "shared", "synapse", "setup.sh");
  if (!existsSync(kit)) return undefined;
  return execFileSync("bash", [kit], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] }).trim();
}

// Suites that start a Synapse of their own (with modules of Kuvert's) need no second pass.
const ownSynapse = new Set(["test/e2e/synapse-upload-check.test.ts"]);
const only = env.KUVERT_TEST_HOMESERVER;
const ownHomeserver = Boolean(env.KUVERT_TEST_HOMESERVER_URL);
const synapse = only === "fixture" || ownHomeserver ? env.KUVERT_TEST_SYNAPSE : findSynapse();
if (synapse) env.KUVERT_TEST_SYNAPSE = synapse;

async function pass(title: string, suites: string[], extra: NodeJS.ProcessEnv, testArgs: string[] = []): Promise<number> {
  process.stdout.write(`\n== ${title}: ${suites.length} suite${suites.length === 1 ? "" : "s"}\n`);
  // --test-force-exit: matrix-js-sdk leaves a long timer behind for each /sync it made; with
  // support/force-exit.ts, so that the forced exit loses none of a suite's results.
  const args = ["--test", "--test-reporter=spec", "--test-timeout=600000", "--test-force-exit", "--import=./test/support/force-exit.ts", ...testArgs, ...suites];
  const child = spawn(process.execPath, args, { stdio: "inherit", env: { ...env, ...extra } });
  return new Promise<number>((resolve) => child.on("exit", (c, signal) => resolve(c ?? (signal ? 1 : 0))));
}

const realOnly = ["--test-skip-pattern=\\(test homeserver:"];
const e2e = files.filter((f) => f.startsWith("test/e2e/") && !ownSynapse.has(f));
const codes: number[] = [];
if (ownHomeserver) {
  codes.push(await pass(`On the homeserver at ${env.KUVERT_TEST_HOMESERVER_URL}`, e2e, {}, realOnly));
} else {
  if (only !== "synapse") codes.push(await pass("Pass 1, on the test homeserver", files, { KUVERT_TEST_HOMESERVER: "fixture" }));
  if (only !== "fixture") {
    if (synapse) {
      if (e2e.length > 0) codes.push(await pass(`Pass 2, each end-to-end suite on a fresh Synapse (${synapse})`, e2e, { KUVERT_TEST_HOMESERVER: "synapse" }, realOnly));
    } else {
      process.stdout.write('\nPass 2 (the end-to-end suites on a real Synapse) skipped: no KUVERT_TEST_SYNAPSE and no ../shared/synapse; README, "Tests against a real homeserver".\n');
    }
  }
}
stopServices();
process.exit(codes.find((c) => c !== 0) ?? 0);
