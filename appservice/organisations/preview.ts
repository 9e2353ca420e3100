// What a CSV import would change, without changing anything: per row the outcome it would have
// (created, updated, unchanged, error) and the changes, compared with what is stored now.
import type { Queryable } from "../db/database.ts";
import { ErrCode } from "../errors.ts";
import type { ImportRow } from "./csv.ts";
import type { ClerkInput, OrganisationInput } from "./model.ts";
import { asInput } from "./service.ts";
import { clerkKey, findOrganisation } from "./store.ts";

export interface PreviewChanges {
  name?: { from: string; to: string };
  tagsAdded?: string[];
  tagsRemoved?: string[];
  clerksAdded?: string[];
  clerksRemoved?: string[];
  clerksChanged?: string[];
}

export interface PreviewRow {
  line: number;
  id: string;
  /** Kept for callers of the older dry run: whether the row itself is well-formed. */
  valid: boolean;
  outcome: "created" | "updated" | "unchanged" | "error";
  changes?: PreviewChanges;
  errcode?: string;
  error?: string;
}

const label = (c: ClerkInput) => c.matrixId ?? c.email ?? "?";

/** The difference between the stored organisation (as input) and the row. Pure. */
export function diffOrganisation(before: OrganisationInput, after: OrganisationInput): PreviewChanges {
  const changes: PreviewChanges = {};
  if (before.name !== after.name) changes.name = { from: before.name, to: after.name };
  const tagsAdded = after.tags.filter((t) => !before.tags.includes(t));
  const tagsRemoved = before.tags.filter((t) => !after.tags.includes(t));
  if (tagsAdded.length) changes.tagsAdded = tagsAdded;
  if (tagsRemoved.length) changes.tagsRemoved = tagsRemoved;
  const old = new Map(before.clerks.map((c) => [clerkKey(c), c]));
  const wanted = new Map(after.clerks.map((c) => [clerkKey(c), c]));
  const added = [...wanted].filter(([k]) => !old.has(k)).map(([, c]) => label(c));
  const removed = [...old].filter(([k]) => !wanted.has(k)).map(([, c]) => label(c));
  const changed = [...wanted]
    .filter(([k, c]) => {
      const o = old.get(k);
      return o !== undefined && (o.email !== c.email || o.name !== c.name || o.matrixId !== c.matrixId);
    })
    .map(([, c]) => label(c));
  if (added.length) changes.clerksAdded = added;
  if (removed.length) changes.clerksRemoved = removed;
  if (changed.length) changes.clerksChanged = changed;
  return changes;
}

export async function previewImport(q: Queryable, rows: ImportRow[]): Promise<{ dryRun: true; rows: PreviewRow[]; summary: Record<PreviewRow["outcome"], number> }> {
  const out: PreviewRow[] = [];
  const summary = { created: 0, updated: 0, unchanged: 0, error: 0 };
  for (const row of rows) {
    let entry: PreviewRow;
    if (row.error || !row.input) {
      entry = { line: row.line, id: row.id, valid: false, outcome: "error", errcode: row.error?.errcode ?? ErrCode.InvalidInput, error: row.error?.message ?? "invalid row" };
    } else {
      const stored = await findOrganisation(q, row.input.id);
      if (!stored) {
        entry = { line: row.line, id: row.id, valid: true, outcome: "created", changes: diffOrganisation({ id: row.id, name: "", tags: [], clerks: [] }, row.input) };
        delete entry.changes!.name;
      } else {
        const before = asInput(stored);
        const changes = diffOrganisation(before, row.input);
        const addsSomething = changes.name || changes.tagsAdded || changes.tagsRemoved || changes.clerksAdded || changes.clerksChanged;
        if (stored.state === "archived" && addsSomething) {
          entry = { line: row.line, id: row.id, valid: true, outcome: "error", errcode: ErrCode.Archived, error: `Organisation ${row.id} is archived; only removing clerks is still possible.` };
        } else {
          entry = { line: row.line, id: row.id, valid: true, outcome: Object.keys(changes).length ? "updated" : "unchanged", changes };
        }
      }
    }
    summary[entry.outcome]++;
    out.push(entry);
  }
  return { dryRun: true, rows: out, summary };
}
