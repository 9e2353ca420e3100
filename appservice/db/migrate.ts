import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { ErrCode, KuvertError } from "../errors.ts";
import type { Database } from "./database.ts";

// Each domain keeps its SQL beside its code: appservice/<domain>/migrations/NNN_name.sql, the
// core's (audit, rooms, tokens, leases) in appservice/db/migrations. They are found by that folder
// name, not through the module list, so that the schema version is known without starting anything
// (version.ts, `kuvert migrate`). Every migration always applies, whether or not its module is
// switched on: a module switched on later finds its tables, and retention and subject requests can
// read them either way. One global order by version number; the number and name of a file are what
// schema_migrations records, so moving a file between folders changes nothing for a database.
const appserviceDir = join(import.meta.dirname, "..");
// Any constant: several Kuvert processes starting at once apply migrations one after another.
const MIGRATION_LOCK = 7_410_001;

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

/** The migrations folders: the core's and each domain's that has one. */
export function migrationDirs(root = appserviceDir): string[] {
  return readdirSync(root, { withFileTypes: true })
    .filter((d) => d.isDirectory() && existsSync(join(root, d.name, "migrations")))
    .map((d) => join(root, d.name, "migrations"))
    .sort();
}

export function listMigrations(dirs = migrationDirs()): Migration[] {
  const found = dirs.flatMap((dir) =>
    readdirSync(dir)
      .filter((f) => /^\d{3}_[a-z0-9_]+\.sql$/.test(f))
      .map((file) => ({ version: Number(file.slice(0, 3)), name: file.slice(4, -4), sql: readFileSync(join(dir, file), "utf8"), file: join(dir, file) })),
  );
  found.sort((a, b) => a.version - b.version);
  for (let i = 1; i < found.length; i++) {
    if (found[i]!.version === found[i - 1]!.version) {
      throw new KuvertError(ErrCode.Internal, `Two migrations have the version ${found[i]!.version}: ${found[i - 1]!.file} and ${found[i]!.file}; each version number is used once across all domains.`);
    }
  }
  return found.map(({ version, name, sql }) => ({ version, name, sql }));
}

/** Applies the migrations not yet applied, each in its own transaction. Returns the versions applied. */
export async function migrate(db: Database, migrations = listMigrations()): Promise<number[]> {
  const applied: number[] = [];
  await db.transaction(async (tx) => {
    await tx.query("SELECT pg_advisory_xact_lock($1)", [MIGRATION_LOCK]);
    await tx.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
    const done = new Set((await tx.query<{ version: number }>("SELECT version FROM schema_migrations")).rows.map((r) => Number(r.version)));
    const known = new Set(migrations.map((m) => m.version));
    const unknown = [...done].filter((v) => !known.has(v));
    if (unknown.length > 0) {
      const newest = Math.max(0, ...known);
      throw new KuvertError(
        ErrCode.SchemaTooNew,
        `The database schema is at version ${Math.max(...done)}, newer than this Kuvert knows (up to ${newest}; it lacks migrations ${unknown.sort((a, b) => a - b).join(", ")}): a newer Kuvert upgraded it. ` +
          "Run that newer Kuvert (or a later one), or restore the backup taken before the upgrade; this Kuvert does not start on a schema it does not know.",
      );
    }
    for (const m of migrations) {
      if (done.has(m.version)) continue;
      await tx.exec(m.sql);
      await tx.query("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", [m.version, m.name]);
      applied.push(m.version);
    }
  });
  return applied;
}

/** The schema version of a database: its highest applied migration (0 for an empty database). */
export async function databaseSchemaVersion(db: Database): Promise<number> {
  const exists = await db.query<{ t: string | null }>("SELECT to_regclass('schema_migrations')::text AS t");
  if (!exists.rows[0]?.t) return 0;
  return Number((await db.query<{ v: number | null }>("SELECT max(version) AS v FROM schema_migrations")).rows[0]?.v ?? 0);
}
