// Document versions: a drop may name the document it replaces, by its id or by the reference
// of the current version in the same organisation. Each version is a document of its own; these
// rules only decide which one may be replaced, and link the two:
//
//  - only an outbound document of the same organisation that was delivered can be replaced;
//  - each version is replaced at most once (a correction of a correction names the newest);
//  - the link is made when the new version is accepted, and undone when the scanner rejects it.
import type { Queryable } from "../db/database.ts";
import { ErrCode, KuvertError } from "../errors.ts";
import { checkShortText } from "./model.ts";
import type { DocumentRow } from "./store.ts";
import { DocumentErr } from "./errors.ts";

/** How a submission names the version it replaces: a document id, or a reference in the same organisation. */
export type Supersedes = { documentId: string } | { reference: string };

const documentIdPattern = /^doc_[A-Za-z0-9_-]{1,64}$/;

/** Reads the two ways of naming a replaced version (at most one); null when neither is given. */
export function parseSupersedes(documentId: string | null | undefined, reference: string | null | undefined): Supersedes | null {
  const id = documentId?.trim() || undefined;
  const ref = reference?.trim() || undefined;
  if (id && ref) {
    throw new KuvertError(ErrCode.InvalidInput, "Name the replaced document either by its id (supersedes) or by its reference (supersedesReference), not both.", [{ path: "supersedesReference", message: "not together with supersedes" }]);
  }
  if (id) {
    if (!documentIdPattern.test(id)) {
      throw new KuvertError(ErrCode.InvalidInput, `supersedes: expected a document id like doc_…, found ${JSON.stringify(id.slice(0, 80))}`, [{ path: "supersedes", message: "a document id like doc_…" }]);
    }
    return { documentId: id };
  }
  if (ref) return { reference: checkShortText("reference", ref)! };
  return null;
}

function describe(s: Supersedes): string {
  return "documentId" in s ? `document ${s.documentId}` : `the document with reference ${JSON.stringify(s.reference)}`;
}

/**
 * The version a submission replaces, checked and (inside a transaction) locked, so two
 * corrections of the same document cannot both pass. Throws a KuvertError (404 or 409) that
 * says why it cannot be replaced.
 */
export async function findReplaceable(q: Queryable, organisationId: string, s: Supersedes, lock: boolean): Promise<DocumentRow> {
  const forUpdate = lock ? " FOR UPDATE" : "";
  let row: DocumentRow | undefined;
  if ("documentId" in s) {
    row = (await q.query<DocumentRow>(`SELECT * FROM documents WHERE id = $1${forUpdate}`, [s.documentId])).rows[0];
    if (!row) throw new KuvertError(ErrCode.NotFound, `There is no document ${s.documentId} to replace.`);
  } else {
    // The current version: not replaced (or being replaced) and not refused by the scanner.
    const current = (
      await q.query<DocumentRow>(
        `SELECT * FROM documents WHERE organisation_id = $1 AND reference = $2 AND direction = 'outbound' AND superseded_by IS NULL AND state <> 'rejected'
          ORDER BY created_at DESC, id${forUpdate}`,
        [organisationId, s.reference],
      )
    ).rows;
    if (current.length > 1) {
      throw new KuvertError(DocumentErr.ReferenceAmbiguous, `Organisation ${organisationId} has ${current.length} current documents with reference ${JSON.stringify(s.reference)} (${current.map((d) => d.id).join(", ")}); name the one to replace by its id (supersedes).`);
    }
    row = current[0];
    if (!row) {
      const any = await q.query("SELECT 1 FROM documents WHERE organisation_id = $1 AND reference = $2 AND direction = 'outbound' LIMIT 1", [organisationId, s.reference]);
      if (any.rowCount === 0) throw new KuvertError(ErrCode.NotFound, `Organisation ${organisationId} has no document with reference ${JSON.stringify(s.reference)} to replace.`);
      throw new KuvertError(
        DocumentErr.AlreadyReplaced,
        `Every document with reference ${JSON.stringify(s.reference)} in organisation ${organisationId} was replaced already or never delivered; look up the current version (GET /api/v1/documents/{id}/versions) and name it by its id.`,
      );
    }
  }
  if (row.organisation_id !== organisationId) {
    throw new KuvertError(DocumentErr.OtherOrganisation, `${describe(s)} belongs to another organisation; a new version goes to the organisation of the version it replaces.`);
  }
  if (row.direction !== "outbound") {
    throw new KuvertError(DocumentErr.NotDelivered, `${describe(s)} is a file posted in the room, not a document Kuvert delivered; only delivered documents can be replaced.`);
  }
  if (row.superseded_by) {
    throw new KuvertError(DocumentErr.AlreadyReplaced, `Document ${row.id} (version ${row.version}) was replaced already by ${row.superseded_by}; a further correction replaces the newest version, ${row.superseded_by}.`);
  }
  if (row.state !== "delivered") {
    const why = row.state === "rejected" ? "it was rejected and never delivered" : `it is not delivered yet (${row.state})`;
    throw new KuvertError(DocumentErr.NotDelivered, `Document ${row.id} cannot be replaced: ${why}. Only a delivered document can be replaced; send this one as a new document, or wait until the first is delivered.`);
  }
  return row;
}

/** After the new version is inserted: the replaced one points to it. */
export async function linkVersions(q: Queryable, replaced: string, replacement: string): Promise<void> {
  await q.query("UPDATE documents SET superseded_by = $2 WHERE id = $1", [replaced, replacement]);
}

/** A replacement the scanner rejected replaces nothing: the earlier version can be corrected again. */
export async function unlinkRejected(q: Queryable, doc: Pick<DocumentRow, "id" | "supersedes">): Promise<void> {
  if (!doc.supersedes) return;
  await q.query("UPDATE documents SET superseded_by = NULL WHERE id = $1 AND superseded_by = $2", [doc.supersedes, doc.id]);
}

/** Every version linked to a document, oldest first: back along supersedes, forward along superseded_by. */
export async function versionChain(q: Queryable, id: string): Promise<DocumentRow[]> {
  const first = (await q.query<DocumentRow>("SELECT * FROM documents WHERE id = $1", [id])).rows[0];
  if (!first) return [];
  const chain = [first];
  const seen = new Set([first.id]);
  const step = async (next: string | null) => (next && !seen.has(next) ? ((await q.query<DocumentRow>("SELECT * FROM documents WHERE id = $1", [next])).rows[0] ?? null) : null);
  for (let d = await step(first.supersedes); d; d = await step(d.supersedes)) {
    chain.unshift(d);
    seen.add(d.id);
  }
  for (let d = await step(first.superseded_by); d; d = await step(d.superseded_by)) {
    chain.push(d);
    seen.add(d.id);
  }
  return chain;
}
