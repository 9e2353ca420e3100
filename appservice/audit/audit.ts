// The audit log: one row per modifying action, written in the same transaction as the
// change it records, chained by SHA-256 so that a changed or removed row is found.
import { createHash } from "node:crypto";
import { columnsOf, type Queryable } from "../db/database.ts";

export const GENESIS_HASH = "0".repeat(64);
// Serialises appends so that each row chains to exactly one predecessor.
export const AUDIT_LOCK = 7_410_002;

export interface AuditEntry {
  /** A Matrix user ID, `token:<name>` for an API token, or `kuvert` for Kuvert itself. */
  actor: string;
  action: string;
  organisationId?: string | null;
  object?: string | null;
  outcome: "ok" | "refused" | "failed";
  details?: Record<string, unknown>;
}

export interface AuditRow {
  seq: string;
  at: Date;
  actor: string;
  action: string;
  organisation_id: string | null;
  object: string | null;
  outcome: string;
  details: Record<string, unknown>;
  prev_hash: string;
  hash: string;
}

function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value ?? null);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
}

/** The hash of a row: SHA-256 over its canonical form and the previous row's hash. */
export function rowHash(row: Omit<AuditRow, "hash">): string {
  const canonical = canonicalJson([String(row.seq), row.at.toISOString(), row.actor, row.action, row.organisation_id, row.object, row.outcome, row.details]);
  return createHash("sha256").update(row.prev_hash).update("\n").update(canonical).digest("hex");
}

/** Appends one entry. Call it with the transaction that makes the change. */
export async function audit(tx: Queryable, entry: AuditEntry, at: Date = new Date()): Promise<AuditRow> {
  const [row] = await auditMany(tx, [entry], at);
  return row!;
}

/**
 * Appends several entries in one go, chained in the order given: one lock, one look at the
 * chain's end, one INSERT (for work that records many like actions at once, e.g. a fan-out).
 */
export async function auditMany(tx: Queryable, entries: AuditEntry[], at: Date = new Date()): Promise<AuditRow[]> {
  if (entries.length === 0) return [];
  // The chain's lock and its last row (migration 016): one round trip.
  const end = await tx.query<{ last_seq: string | null; last_hash: string | null }>("SELECT last_seq, last_hash FROM audit_chain_end($1)", [AUDIT_LOCK]);
  const last = end.rows[0];
  let seq = last?.last_seq ? BigInt(last.last_seq) : 0n;
  let prevHash = last?.last_hash ?? GENESIS_HASH;
  const rows: AuditRow[] = entries.map((entry) => {
    seq += 1n;
    const row: Omit<AuditRow, "hash"> = {
      seq: String(seq),
      at,
      actor: entry.actor,
      action: entry.action,
      organisation_id: entry.organisationId ?? null,
      object: entry.object ?? null,
      outcome: entry.outcome,
      details: JSON.parse(JSON.stringify(entry.details ?? {})) as Record<string, unknown>,
      prev_hash: prevHash,
    };
    const full: AuditRow = { ...row, hash: rowHash(row) };
    prevHash = full.hash;
    return full;
  });
  await tx.query(
    `INSERT INTO audit_log (seq, at, actor, action, organisation_id, object, outcome, details, prev_hash, hash)
     SELECT * FROM unnest($1::bigint[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::jsonb[], $9::text[], $10::text[])`,
    columnsOf(rows, (r) => [r.seq, r.at, r.actor, r.action, r.organisation_id, r.object, r.outcome, JSON.stringify(r.details), r.prev_hash, r.hash]),
  );
  return rows;
}

export interface VerifyResult {
  ok: boolean;
  rows: number;
  /** The first row whose hash or link does not hold. */
  brokenAt?: { seq: string; reason: string };
}

/** Walks the chain in order and reports the first broken link. */
export async function verifyAuditLog(db: Queryable, batch = 1000): Promise<VerifyResult> {
  let after = "0";
  let expectedPrev: string | undefined;
  let expectedSeq: bigint | undefined;
  let count = 0;
  // Rows pruned by retention: the chain goes on from the last removed row's hash.
  const anchor = (await db.query<{ seq: string; hash: string }>("SELECT seq, hash FROM audit_anchor WHERE id = 1")).rows[0];
  if (anchor) {
    expectedPrev = anchor.hash;
    expectedSeq = BigInt(anchor.seq) + 1n;
    after = anchor.seq;
  } else {
    // Without an anchor the chain starts at row 1 from the genesis hash: removed first rows show.
    expectedPrev = GENESIS_HASH;
    expectedSeq = 1n;
  }
  for (;;) {
    const { rows } = await db.query<AuditRow>("SELECT * FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2", [after, batch]);
    if (rows.length === 0) return { ok: true, rows: count };
    for (const row of rows) {
      const seq = BigInt(row.seq);
      if (expectedSeq !== undefined && seq !== expectedSeq) {
        return { ok: false, rows: count, brokenAt: { seq: String(expectedSeq), reason: `row ${expectedSeq} is missing` } };
      }
      if (expectedPrev !== undefined && row.prev_hash !== expectedPrev) {
        return { ok: false, rows: count, brokenAt: { seq: row.seq, reason: "does not link to the previous row's hash" } };
      }
      if (rowHash(row) !== row.hash) {
        return { ok: false, rows: count, brokenAt: { seq: row.seq, reason: "content does not match its hash (the row was changed)" } };
      }
      expectedPrev = row.hash;
      expectedSeq = seq + 1n;
      after = row.seq;
      count++;
    }
  }
}
