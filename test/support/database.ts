import { randomBytes } from "node:crypto";
import { createDatabase } from "./postgres.ts";

/** A fresh database for one suite: a new database in the tests' PostgreSQL, or (undefined) an embedded PGlite. */
export async function freshDatabaseUrl(kind: "postgres" | "pglite"): Promise<string | undefined> {
  if (kind === "pglite") return undefined;
  const cluster = process.env.KUVERT_TEST_DATABASE_URL;
  if (!cluster) throw new Error("KUVERT_TEST_DATABASE_URL is not set: run the tests with `npm test`, which starts PostgreSQL.");
  return createDatabase(cluster, `kuvert_${randomBytes(6).toString("hex")}`);
}
