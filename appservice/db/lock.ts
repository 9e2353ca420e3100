// The embedded database belongs to one process at a time. A lock file says which.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export interface EmbeddedLock {
  release(): void;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

export function acquireEmbeddedLock(dir: string): EmbeddedLock {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, "kuvert.lock");
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(file, String(process.pid), { flag: "wx" });
      return { release: () => rmSync(file, { force: true }) };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      const pid = Number(readFileSync(file, "utf8"));
      if (Number.isInteger(pid) && pid > 0 && alive(pid) && pid !== process.pid) {
        throw new Error(`The embedded database in ${dir} is in use by process ${pid} (a running Kuvert). ` + "Stop it first, or use the admin API while it runs; with a PostgreSQL server (database.url) commands and service can run together.", { cause: err });
      }
      rmSync(file, { force: true });
    }
  }
  throw new Error(`Cannot lock the embedded database in ${dir}.`);
}
