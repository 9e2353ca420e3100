// CSV import: one row per organisation. Columns: id, name, tags, clerks. The delimiter is
// taken from the header line: comma, semicolon (as spreadsheets in German locales write) or tab.
//   tags:   separated by ";", "," or spaces, e.g. "schools; north"
//   clerks: separated by ";" or ","; each clerk is a Matrix ID, an e-mail address and/or a
//           name, in any order, e.g. "Anna Beispiel anna@musterstadt.de @anna:example.org; bernd@musterstadt.de";
//           "[account]" (or "[account=anna.b]") asks Kuvert to create the clerk's account on the homeserver
import { parse } from "csv-parse/sync";
import type { Database } from "../db/database.ts";
import { ErrCode, KuvertError, inputError } from "../errors.ts";
import { normalise, organisationInput, type ApplyOutcome, type ClerkInput, type OrganisationInput } from "./model.ts";
import type { Organisations } from "./service.ts";

export const csvColumns = ["id", "name", "tags", "clerks"] as const;

export interface ImportRow {
  /** Line in the file (1 is the header). */
  line: number;
  id: string;
  input?: OrganisationInput;
  error?: { errcode: string; message: string };
}

export interface ImportReportRow {
  line: number;
  id: string;
  outcome: ApplyOutcome | "error";
  errcode?: string;
  error?: string;
}

export interface ImportReport {
  rows: ImportReportRow[];
  summary: Record<ImportReportRow["outcome"], number>;
}

/** `[account]` or `[account=anna.b]` in a clerk field: create an account (with this username). */
const accountToken = /^\[account(?:=([^\]\s]+))?\]$/i;

function parseClerk(text: string): ClerkInput {
  const clerk: { matrixId?: string; email?: string; name?: string; createAccount?: boolean; username?: string } = {};
  const nameParts: string[] = [];
  for (const token of text.trim().split(/\s+/)) {
    const account = accountToken.exec(token);
    if (account) {
      clerk.createAccount = true;
      if (account[1]) clerk.username = account[1];
    } else if (token.startsWith("@") && token.includes(":")) clerk.matrixId = token;
    else if (/^[^@\s]+@[^@\s]+$/.test(token)) clerk.email = token.replace(/^<|>$/g, "");
    else nameParts.push(token);
  }
  if (nameParts.length) clerk.name = nameParts.join(" ");
  return clerk;
}

/** Parses the file into rows; a bad row carries its reason, the others are not affected. */
export function parseOrganisationsCsv(text: string): ImportRow[] {
  const body = text.replace(/^\uFEFF/, "");
  const headerLine = body.split(/\r?\n/, 1)[0] ?? "";
  const delimiter = headerLine.includes("\t") ? "\t" : headerLine.includes(";") && !headerLine.includes(",") ? ";" : ",";
  let records: string[][];
  try {
    records = parse(body, { skip_empty_lines: true, trim: true, relax_column_count: true, delimiter }) as string[][];
  } catch (err) {
    throw new KuvertError(ErrCode.InvalidInput, `The CSV file cannot be read: ${(err as Error).message}`);
  }
  const header = (records[0] ?? []).map((h) => h.toLowerCase());
  const missing = csvColumns.filter((c) => c !== "tags" && c !== "clerks" && !header.includes(c));
  if (missing.length > 0) {
    throw new KuvertError(ErrCode.InvalidInput, `The CSV header must name the columns ${csvColumns.join(", ")} (tags and clerks optional); missing: ${missing.join(", ")}.`);
  }
  const unknown = header.filter((h) => !(csvColumns as readonly string[]).includes(h));
  if (unknown.length > 0) throw new KuvertError(ErrCode.UnknownField, `Unknown CSV columns: ${unknown.join(", ")}. Known: ${csvColumns.join(", ")}.`);
  const col = (row: string[], name: string) => row[header.indexOf(name)] ?? "";
  const firstLine = new Map<string, number>();
  return records.slice(1).map((record, i): ImportRow => {
    const line = i + 2;
    const id = col(record, "id");
    if (record.length > header.length) return { line, id, error: { errcode: ErrCode.InvalidInput, message: `the row has ${record.length} fields, the header ${header.length}` } };
    const seen = firstLine.get(id);
    if (seen !== undefined) return { line, id, error: { errcode: ErrCode.InvalidInput, message: `id ${id} appears again (first on line ${seen}); each organisation once` } };
    firstLine.set(id, line);
    const raw = {
      id,
      name: col(record, "name"),
      tags: col(record, "tags")
        .split(/[;,\s]+/)
        .filter(Boolean),
      clerks: col(record, "clerks")
        .split(/[;,\n]/)
        .map((c) => c.trim())
        .filter(Boolean)
        .map(parseClerk),
    };
    const result = organisationInput.safeParse(raw);
    if (!result.success) {
      const err = inputError(result.error.issues);
      return { line, id, error: { errcode: err.errcode, message: err.message } };
    }
    return { line, id, input: normalise(result.data) };
  });
}

/** Applies the rows, each in its own transaction: a bad row changes nothing and the others go on. */
export async function importOrganisations(db: Database, organisations: Organisations, rows: ImportRow[], actor: string, onProgress: (done: number, total: number) => void = () => undefined): Promise<ImportReport> {
  const report: ImportReport = { rows: [], summary: { created: 0, updated: 0, unchanged: 0, error: 0 } };
  let done = 0;
  for (const row of rows) {
    let entry: ImportReportRow;
    if (row.error || !row.input) {
      entry = { line: row.line, id: row.id, outcome: "error", errcode: row.error?.errcode ?? ErrCode.InvalidInput, error: row.error?.message ?? "invalid row" };
    } else {
      try {
        // Accounts to be created get their usernames first (checked with the homeserver), per row.
        const input = await organisations.prepare(row.input);
        const result = await db.transaction((tx) => organisations.applyIn(tx, input, actor));
        entry = { line: row.line, id: row.id, outcome: result.outcome };
      } catch (err) {
        if (!(err instanceof KuvertError)) throw err;
        entry = { line: row.line, id: row.id, outcome: "error", errcode: err.errcode, error: err.message };
      }
    }
    report.rows.push(entry);
    report.summary[entry.outcome]++;
    onProgress(++done, rows.length);
  }
  return report;
}
