// Audit log export for the data protection officer: CSV or JSON Lines, for a time range,
// streamed in pages so a long log does not fill memory.
import type { Queryable } from "../db/database.ts";
import type { AuditRow } from "./audit.ts";

export type ExportFormat = "csv" | "jsonl";
const columns = ["seq", "at", "actor", "action", "organisation_id", "object", "outcome", "details", "prev_hash", "hash"] as const;

function csvField(value: unknown): string {
  const text = value === null || value === undefined ? "" : value instanceof Date ? value.toISOString() : typeof value === "object" ? JSON.stringify(value) : String(value);
  // Quote always; double quotes doubled. A leading =, +, - or @ is prefixed so spreadsheets do not run it as a formula.
  const safe = /^[=+\-@\t\r]/.test(text) ? `'${text}` : text;
  return `"${safe.replace(/"/g, '""')}"`;
}

export function formatRow(row: AuditRow, format: ExportFormat): string {
  if (format === "jsonl") {
    return JSON.stringify({ ...row, at: row.at.toISOString() });
  }
  return columns.map((c) => csvField(row[c])).join(",");
}

/** Writes the rows with from <= at < to, in order, to `write`. Answers how many. */
export async function exportAuditLog(db: Queryable, opts: { from?: Date | undefined; to?: Date | undefined; format: ExportFormat }, write: (chunk: string) => void | Promise<void>): Promise<number> {
  if (opts.format === "csv") await write(`${columns.join(",")}\n`);
  let after = "0";
  let count = 0;
  for (;;) {
    const { rows } = await db.query<AuditRow>(`SELECT * FROM audit_log WHERE seq > $1 AND ($2::timestamptz IS NULL OR at >= $2) AND ($3::timestamptz IS NULL OR at < $3) ORDER BY seq LIMIT 1000`, [after, opts.from ?? null, opts.to ?? null]);
    if (rows.length === 0) return count;
    await write(rows.map((r) => `${formatRow(r, opts.format)}\n`).join(""));
    count += rows.length;
    after = rows[rows.length - 1]!.seq;
  }
}
