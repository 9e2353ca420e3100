// One interface over the two databases Kuvert runs on: a PostgreSQL server through `pg`,
// or the embedded PGlite (PostgreSQL compiled to WebAssembly) when no URL is configured.
// Both run the same SQL.
import { mkdirSync } from "node:fs";
import pg from "pg";
import type { PGlite } from "@electric-sql/pglite";
import { ErrCode, KuvertError } from "../errors.ts";

export interface QueryResult<R> {
  rows: R[];
  rowCount: number;
}

export interface Queryable {
  query<R = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<QueryResult<R>>;
  /** Runs a script of several statements without parameters (migrations). */
  exec(sql: string): Promise<void>;
}

export interface Database extends Queryable {
  readonly kind: "postgres" | "pglite";
  /** Runs fn in one transaction: committed when fn resolves, rolled back when it throws. */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

// bigint (int8) columns come back as strings from both drivers, so values are the same
// whichever database runs (a JavaScript number cannot hold every int8).
pg.types.setTypeParser(pg.types.builtins.INT8, (v) => v);

/**
 * Rows as one array per column: the parameters of a statement that takes several rows at once
 * (`… SELECT * FROM unnest($1::text[], $2::bigint[], …)`). `row` lists a row's values in column order.
 * No rows give no columns, and the statement would lack its parameters: callers return early then.
 */
export function columnsOf<T>(rows: readonly T[], row: (r: T) => unknown[]): unknown[][] {
  const columns: unknown[][] = [];
  for (const r of rows) row(r).forEach((value, i) => (columns[i] ??= []).push(value));
  return columns;
}

/**
 * PostgreSQL cannot store the NUL character in text. A parameter that carries one is the
 * caller's input gone unchecked: refused as bad input (400), not a database failure (500).
 */
function checkParams(params: readonly unknown[]): unknown[] {
  for (const p of params) {
    // An array parameter (several rows in one statement) carries its rows' text.
    if (typeof p === "string" ? p.includes("\0") : Array.isArray(p) && p.some((v) => typeof v === "string" && v.includes("\0"))) {
      throw new KuvertError(ErrCode.InvalidInput, "The input contains a NUL character, which Kuvert does not accept in text.");
    }
  }
  return params as unknown[];
}

class PostgresDatabase implements Database {
  readonly kind = "postgres";
  readonly #pool: pg.Pool;

  constructor(url: string, poolSize: number) {
    this.#pool = new pg.Pool({ connectionString: url, max: poolSize, application_name: "kuvert" });
    // An idle client that loses its connection must not crash the process; the pool replaces it.
    this.#pool.on("error", () => undefined);
  }

  async query<R>(sql: string, params: readonly unknown[] = []): Promise<QueryResult<R>> {
    const result = await this.#pool.query(sql, checkParams(params));
    return { rows: result.rows as R[], rowCount: result.rowCount ?? 0 };
  }

  async exec(sql: string): Promise<void> {
    await this.#pool.query(sql);
  }

  async transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    const client = await this.#pool.connect();
    try {
      await client.query("BEGIN");
      const tx: Queryable = {
        async query<R>(sql: string, params: readonly unknown[] = []) {
          const result = await client.query(sql, checkParams(params));
          return { rows: result.rows as R[], rowCount: result.rowCount ?? 0 };
        },
        async exec(sql: string) {
          await client.query(sql);
        },
      };
      const value = await fn(tx);
      await client.query("COMMIT");
      return value;
    } catch (err) {
      await client.query("ROLLBACK").catch(() => undefined);
      throw err;
    } finally {
      client.release();
    }
  }

  async close(): Promise<void> {
    await this.#pool.end();
  }
}

// PGlite reports affectedRows 0 for a SELECT: the row count is the larger of the two, as pg's is.
class EmbeddedDatabase implements Database {
  readonly kind = "pglite";
  readonly #db: PGlite;

  constructor(db: PGlite) {
    this.#db = db;
  }

  async query<R>(sql: string, params: readonly unknown[] = []): Promise<QueryResult<R>> {
    const result = await this.#db.query<R>(sql, checkParams(params));
    return { rows: result.rows, rowCount: Math.max(result.affectedRows ?? 0, result.rows.length) };
  }

  async exec(sql: string): Promise<void> {
    await this.#db.exec(sql);
  }

  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    // PGlite has one connection; its transaction() queues other queries until it ends.
    return this.#db.transaction(async (inner) => {
      const tx: Queryable = {
        async query<R>(sql: string, params: readonly unknown[] = []) {
          const result = await inner.query<R>(sql, checkParams(params));
          return { rows: result.rows, rowCount: Math.max(result.affectedRows ?? 0, result.rows.length) };
        },
        async exec(sql: string) {
          await inner.exec(sql);
        },
      };
      return fn(tx);
    });
  }

  async close(): Promise<void> {
    await this.#db.close();
  }
}

export interface DatabaseOptions {
  url?: string | undefined;
  embeddedDir: string;
  poolSize: number;
}

export async function openDatabase(opts: DatabaseOptions): Promise<Database> {
  if (opts.url) {
    const db = new PostgresDatabase(opts.url, opts.poolSize);
    await db.query("SELECT 1");
    return db;
  }
  const { PGlite } = await import("@electric-sql/pglite");
  if (opts.embeddedDir !== "memory://") mkdirSync(opts.embeddedDir, { recursive: true });
  // int8 as text, as the pg driver is set up above.
  const embedded = await PGlite.create(opts.embeddedDir, { parsers: { 20: (value: string) => value } });
  return new EmbeddedDatabase(embedded);
}
