// Preloaded into the test runner and every suite's process (test/run.ts). `--test-force-exit`
// lets a suite's process end although matrix-js-sdk leaves a long timer behind for each /sync;
// but Node's runner calls process.exit() as soon as its reporter has closed, before the last of
// the suite's results written to the runner have left, so the runner counted fewer tests than
// ran (nodejs/node#64833, open; a failure still failed the run through the exit code). Here that
// one exit waits a turn of the event loop and until stdout has taken everything written before
// it. Any other process.exit() is left as it is.
const exit = process.exit.bind(process);

process.exit = ((code?: number | string | null) => {
  if (!new Error().stack?.includes("internal/test_runner/")) return exit(code);
  if (code !== undefined && code !== null) process.exitCode = code;
  setImmediate(() => process.stdout.write("", () => exit()));
  return undefined as never;
}) as typeof process.exit;
