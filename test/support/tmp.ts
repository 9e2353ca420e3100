// Temporary folders for tests: made under the system's temporary directory and removed when the
// test process ends, however it ends (a failed assertion, a timeout, process.exit), so a run
// leaves nothing behind in $TMPDIR.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const made: string[] = [];
let hooked = false;

/** A new empty folder named `prefix` and a random suffix, removed with everything in it at exit. */
export function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  made.push(dir);
  if (!hooked) {
    hooked = true;
    process.once("exit", removeTempDirs);
  }
  return dir;
}

/** Removes every folder tempDir made so far (also called at exit). */
export function removeTempDirs(): void {
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
}
