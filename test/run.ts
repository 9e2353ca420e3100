// `npm test`: starts what the suites need that is not given (PostgreSQL), runs every suite
// with Node's test runner, and stops what it started.
//   npm test                      all suites
//   npm test -- test/e2e/x.test.ts  some suites
// Environment: KUVERT_TEST_DATABASE_URL uses an existing PostgreSQL (superuser URL) instead of
// starting one; KUVERT_TEST_HOMESERVER_URL and friends run against a real homeserver (README).
import { spawn } from "node:child_process";
import { existsSync, globSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startPostgres, type PostgresCluster } from "./support/postgres.ts";

const root = join(import.meta.dirname, "..");
process.chdir(root);
const requested = process.argv.slice(2);
const files = requested.length > 0 ? requested : globSync("test/**/*.test.ts").sort();

// Each suite clears its own logs and work folder, so runs side by side do not disturb each other.
mkdirSync(join(root, "test-artifacts", "logs"), { recursive: true });

// The suites' temporary files go into a folder of this run's own, removed at the end; what a suite
// did not clean up itself is named, so that it gets fixed (test/support/tmp.ts cleans up).
const runTmp = mkdtempSync(join(tmpdir(), "kuvert-test-run-"));

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

// --test-force-exit: matrix-js-sdk leaves a long timer behind for each /sync it made.
const args = ["--test", "--test-reporter=spec", "--test-timeout=600000", "--test-force-exit", ...files];
const child = spawn(process.execPath, args, { stdio: "inherit", env });
const code = await new Promise<number>((resolve) => child.on("exit", (c, signal) => resolve(c ?? (signal ? 1 : 0))));
stopServices();
process.exit(code);
