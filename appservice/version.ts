// Which Kuvert is speaking: the program version (package.json), the commit it was built from,
// and the database schema version it knows (its highest migration). `kuvert --version`,
// GET /version, the kuvert_build_info metric, the console's footer and the log say the same.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { listMigrations } from "./db/migrate.ts";

const root = join(import.meta.dirname, "..");

/** The program version, as in package.json (semantic versioning). */
export const version: string = (JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { version: string }).version;

/** The highest schema version (migration number) this Kuvert knows. */
export const schemaVersion: number = Math.max(0, ...listMigrations().map((m) => m.version));

let knownCommit: string | undefined;

/**
 * The commit Kuvert was built from: $KUVERT_COMMIT (the image sets it from the build argument),
 * else what git says in a checkout, else "unknown".
 */
export function commit(): string {
  if (knownCommit !== undefined) return knownCommit;
  const fromEnv = process.env.KUVERT_COMMIT?.trim();
  if (fromEnv) return (knownCommit = fromEnv);
  try {
    knownCommit =
      execFileSync("git", ["rev-parse", "HEAD"], { cwd: root, stdio: ["ignore", "pipe", "ignore"], timeout: 2000 })
        .toString()
        .trim() || "unknown";
  } catch {
    knownCommit = "unknown";
  }
  return knownCommit;
}

/**
 * The version of the HTTP API under /api/v1: the major number is the one in the path; the minor
 * number grows with each change a client may notice but need not follow (CHANGELOG.md, README
 * "API versions"). The OpenAPI document carries it as info.version.
 */
export const apiVersion = "1.1";

export interface BuildInfo {
  version: string;
  commit: string;
  schemaVersion: number;
  apiVersion: string;
}

export function buildInfo(): BuildInfo {
  return { version, commit: commit(), schemaVersion, apiVersion };
}
