// SQL of the documents and document_work tables.
import { columnsOf, type Queryable } from "../db/database.ts";
import type { MediaReference } from "../matrix/references.ts";
import type { DocumentRecord, DocumentState } from "./model.ts";
import { notificationStates } from "../mail/store.ts";

export interface DocumentRow {
  id: string;
  direction: "outbound" | "inbound";
  organisation_id: string;
  source: string;
  submitted_by: string;
  filename: string;
  kind: string | null;
  reference: string | null;
  mimetype: string | null;
  size: string;
  sha256: string | null;
  idempotency_scope: string | null;
  idempotency_key: string | null;
  room_event_id: string | null;
  source_mxc: string | null;
  /** Inbound: every media reference of the event (NULL on rows from before migration 012: source_mxc only). */
  media: MediaReference[] | null;
  state: DocumentState;
  reason: string | null;
  signature: string | null;
  errcode: string | null;
  mxc_uri: string | null;
  media_uploaded: boolean;
  /** Outbound into an encrypted room: the attachment's key and IV (48 bytes), recorded before its upload. */
  media_key: Uint8Array | null;
  /** The SHA-256 of its ciphertext (unpadded base64), once uploaded. */
  media_sha256: string | null;
  event_id: string | null;
  created_at: Date;
  scanned_at: Date | null;
  finished_at: Date | null;
  supersedes: string | null;
  superseded_by: string | null;
  version: number;
  announcement_event_id: string | null;
}

export function toRecord(r: DocumentRow): DocumentRecord {
  return {
    id: r.id,
    direction: r.direction,
    organisationId: r.organisation_id,
    source: r.source,
    submittedBy: r.submitted_by,
    filename: r.filename,
    kind: r.kind,
    reference: r.reference,
    mimetype: r.mimetype,
    size: Number(r.size),
    sha256: r.sha256,
    state: r.state,
    reason: r.reason,
    signature: r.signature,
    errcode: r.errcode ?? null,
    eventId: r.event_id,
    createdAt: r.created_at.toISOString(),
    scannedAt: r.scanned_at?.toISOString() ?? null,
    finishedAt: r.finished_at?.toISOString() ?? null,
    version: r.version,
    supersedes: r.supersedes,
    supersededBy: r.superseded_by,
  };
}

export async function findDocument(q: Queryable, id: string): Promise<DocumentRow | null> {
  return (await q.query<DocumentRow>("SELECT * FROM documents WHERE id = $1", [id])).rows[0] ?? null;
}

export async function findByIdempotencyKey(q: Queryable, scope: string, key: string): Promise<DocumentRow | null> {
  return (await q.query<DocumentRow>("SELECT * FROM documents WHERE idempotency_scope = $1 AND idempotency_key = $2", [scope, key])).rows[0] ?? null;
}

export interface NewDocument {
  id: string;
  direction: "outbound" | "inbound";
  organisationId: string;
  source: string;
  submittedBy: string;
  filename: string;
  kind: string | null;
  reference: string | null;
  mimetype: string | null;
  size: number;
  sha256: string | null;
  idempotencyScope?: string | null;
  idempotencyKey?: string | null;
  roomEventId?: string | null;
  sourceMxc?: string | null;
  media?: MediaReference[] | null;
  batchId?: string | null;
  /** The version this one replaces, and this one's number (1 for a first version). */
  supersedes?: string | null;
  version?: number;
  /** Scanned clean already (while it arrived): scanned_at is set with the row. */
  scanned?: boolean;
}

/** Inserts the document and its work item; answers the new row, or null when the idempotency key or event was taken. */
export async function insertDocument(q: Queryable, d: NewDocument): Promise<DocumentRow | null> {
  return (await insertDocuments(q, [d]))[0] ?? null;
}

/**
 * Inserts documents and their work items in one statement (a data-modifying WITH); answers the
 * new rows in the order given, leaving out those whose idempotency key or event was taken.
 */
export async function insertDocuments(q: Queryable, list: NewDocument[]): Promise<DocumentRow[]> {
  if (list.length === 0) return [];
  const res = await q.query<DocumentRow>(
    `WITH inserted AS (
     INSERT INTO documents (id, direction, organisation_id, source, submitted_by, filename, kind, reference, mimetype, size, sha256,
                            idempotency_scope, idempotency_key, room_event_id, source_mxc, batch_id, media, supersedes, version, scanned_at)
     SELECT id, direction, organisation_id, source, submitted_by, filename, kind, reference, mimetype, size, sha256,
            idempotency_scope, idempotency_key, room_event_id, source_mxc, batch_id, media, supersedes, version, CASE WHEN scanned THEN now() END
       FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::bigint[], $11::text[],
                   $12::text[], $13::text[], $14::text[], $15::text[], $16::text[], $17::jsonb[], $18::text[], $19::int[], $20::boolean[])
         AS u(id, direction, organisation_id, source, submitted_by, filename, kind, reference, mimetype, size, sha256,
              idempotency_scope, idempotency_key, room_event_id, source_mxc, batch_id, media, supersedes, version, scanned)
     ON CONFLICT DO NOTHING
     RETURNING *
   ), work AS (INSERT INTO document_work (document_id) SELECT id FROM inserted)
   SELECT * FROM inserted`,
    columnsOf(list, (d) => [
      d.id,
      d.direction,
      d.organisationId,
      d.source,
      d.submittedBy,
      d.filename,
      d.kind,
      d.reference,
      d.mimetype,
      d.size,
      d.sha256,
      d.idempotencyScope ?? null,
      d.idempotencyKey ?? null,
      d.roomEventId ?? null,
      d.sourceMxc ?? null,
      d.batchId ?? null,
      d.media ? JSON.stringify(d.media) : null,
      d.supersedes ?? null,
      d.version ?? 1,
      d.scanned ?? false,
    ]),
  );
  const byId = new Map(res.rows.map((r) => [r.id, r]));
  return list.flatMap((d) => byId.get(d.id) ?? []);
}

export async function setState(
  q: Queryable,
  id: string,
  state: DocumentState,
  fields: { reason?: string | null; signature?: string | null; errcode?: string | null; eventId?: string | null; announcementEventId?: string | null; scanned?: boolean; finished?: boolean } = {},
): Promise<void> {
  await q.query(
    `UPDATE documents SET state = $2,
        reason = CASE WHEN $3 THEN $4 ELSE reason END,
        signature = CASE WHEN $5 THEN $6 ELSE signature END,
        event_id = COALESCE($7, event_id),
        scanned_at = CASE WHEN $8 THEN now() ELSE scanned_at END,
        finished_at = CASE WHEN $9 THEN now() ELSE finished_at END,
        errcode = CASE WHEN $10 THEN $11 ELSE errcode END,
        announcement_event_id = COALESCE($12, announcement_event_id)
      WHERE id = $1`,
    [
      id,
      state,
      fields.reason !== undefined,
      fields.reason ?? null,
      fields.signature !== undefined,
      fields.signature ?? null,
      fields.eventId ?? null,
      fields.scanned === true,
      fields.finished === true,
      fields.errcode !== undefined,
      fields.errcode ?? null,
      fields.announcementEventId ?? null,
    ],
  );
}

/** Several documents delivered (their file and announcement events in the room), in one statement. */
export async function setDelivered(q: Queryable, delivered: { id: string; eventId: string; announcementEventId: string }[]): Promise<void> {
  if (delivered.length === 0) return;
  await q.query(
    `UPDATE documents d SET state = 'delivered', event_id = u.event_id, announcement_event_id = u.announcement_event_id, finished_at = now()
       FROM unnest($1::text[], $2::text[], $3::text[]) AS u(id, event_id, announcement_event_id)
      WHERE d.id = u.id`,
    columnsOf(delivered, (d) => [d.id, d.eventId, d.announcementEventId]),
  );
}

/** The media references of an inbound document; those of rows from before migration 012 are their source_mxc. */
export function inboundMedia(doc: DocumentRow): MediaReference[] {
  if (doc.media) return doc.media;
  return doc.source_mxc ? [{ mxc: doc.source_mxc, path: "url" }] : [];
}

/** Once an inbound document is finished, the keys of its encrypted attachments are not kept. */
export async function forgetMediaKeys(q: Queryable, doc: DocumentRow): Promise<void> {
  if (!doc.media?.some((m) => m.encrypted)) return;
  const kept = doc.media.map((m) => ({ mxc: m.mxc, path: m.path, ...(m.encrypted ? { encrypted: { url: m.mxc } } : {}) }));
  await q.query("UPDATE documents SET media = $2 WHERE id = $1", [doc.id, JSON.stringify(kept)]);
}

/** How many documents wait for delivery or inbound scanning now (not those held until later). */
export async function readyWork(q: Queryable): Promise<number> {
  const { rows } = await q.query<{ n: number }>("SELECT count(*)::int AS n FROM document_work WHERE state = 'pending' AND run_after <= now()");
  return rows[0]!.n;
}

/** Records the document's media: reserved (`uploaded` false: the content is still to be PUT) or holding the file. */
export async function setMedia(q: Queryable, id: string, mxc: string, uploaded: boolean): Promise<void> {
  await q.query("UPDATE documents SET mxc_uri = $2, media_uploaded = $3 WHERE id = $1", [id, mxc, uploaded]);
}

/** Records the key and IV a document for an encrypted room is uploaded with, before its upload. */
export async function setMediaKey(q: Queryable, id: string, key: Buffer): Promise<void> {
  await q.query("UPDATE documents SET media_key = $2 WHERE id = $1", [id, key]);
}

export async function setMediaHash(q: Queryable, id: string, sha256: string): Promise<void> {
  await q.query("UPDATE documents SET media_sha256 = $2 WHERE id = $1", [id, sha256]);
}

export async function listDocuments(q: Queryable, organisationId: string, limit: number): Promise<DocumentRow[]> {
  return (await q.query<DocumentRow>("SELECT * FROM documents WHERE organisation_id = $1 ORDER BY created_at DESC LIMIT $2", [organisationId, limit])).rows;
}

export interface NotificationCounts {
  pending: number;
  sent: number;
  dead: number;
}

/** The e-mails to clerks about an outbound document (dedupe key `document:<id>:<address>`), by state. */
export async function notificationCounts(q: Queryable, documentId: string): Promise<NotificationCounts> {
  const prefix = `document:${documentId}:`;
  const counts: NotificationCounts = { pending: 0, sent: 0, dead: 0 };
  for (const r of await notificationStates(q, prefix)) {
    if (r.state === "pending") counts.pending += r.n;
    else if (r.state === "dead") counts.dead += r.n;
    else counts.sent += r.n;
  }
  return counts;
}
