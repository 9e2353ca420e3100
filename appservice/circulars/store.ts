// SQL of the circulars, circular_revisions, circular_attachments, circular_work,
// circular_deliveries and circular_staff_files tables.
import { columnsOf, type Queryable } from "../db/database.ts";
import type { CircularState, DeliveryState, Targets } from "./model.ts";

export interface CircularRow {
  id: string;
  markdown: string;
  body: string;
  html: string;
  targets: Targets;
  author: string;
  source: "api" | "room";
  source_event_id: string | null;
  state: CircularState;
  reason: string | null;
  scheduled_at: Date | null;
  progress_event_id: string | null;
  created_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
}

export interface RevisionRow {
  circular_id: string;
  revision: number;
  markdown: string;
  body: string;
  html: string;
  author: string;
  created_at: Date;
}

export interface AttachmentRow {
  circular_id: string;
  position: number;
  filename: string;
  mimetype: string;
  size: string;
  sha256: string | null;
  source_mxc: string | null;
  /** With source_mxc, from an encrypted staff room: the `file` object that decrypts it. */
  source_file: Record<string, unknown> | null;
  verdict: "clean" | "infected" | "too-large" | null;
  signature: string | null;
  mxc_uri: string | null;
  media_uploaded: boolean;
  /** The encrypted copy for end-to-end-encrypted rooms: its media, key and IV (48 bytes), ciphertext SHA-256. */
  encrypted_mxc: string | null;
  encrypted_uploaded: boolean;
  media_key: Uint8Array | null;
  media_sha256: string | null;
}

export interface DeliveryRow {
  id: string;
  circular_id: string;
  revision: number;
  organisation_id: string;
  state: DeliveryState;
  reason: string | null;
  room_id: string | null;
  event_id: string | null;
  delivered_at: Date | null;
  attempts: number;
  run_after: Date;
  lease_until: Date | null;
  leased_by: string | null;
  last_error: string | null;
}

export interface Summary {
  pending: number;
  delivered: number;
  failed: number;
}

/** A file staff posted in the staff room, as a circular takes it. */
export interface StaffFileRow {
  event_id: string;
  mxc: string;
  /** Posted in an encrypted staff room: the event's `file` object (key, IV, hash; its url is mxc). */
  file: Record<string, unknown> | null;
  filename: string;
  mimetype: string;
  size: string;
}

export interface NewCircular extends Pick<CircularRow, "id" | "markdown" | "body" | "html" | "targets" | "author" | "source"> {
  sourceEventId: string | null;
  scheduledAt: Date | null;
}

export interface NewAttachment extends Pick<AttachmentRow, "filename" | "mimetype"> {
  size: number;
  sha256: string | null;
  sourceMxc: string | null;
  sourceFile: Record<string, unknown> | null;
}

export type NewRevision = Pick<RevisionRow, "revision" | "markdown" | "body" | "html" | "author">;

/** Inserts a circular (its attachments, deliveries and work item are inserted apart). */
export async function insertCircular(q: Queryable, c: NewCircular): Promise<void> {
  await q.query(
    `INSERT INTO circulars (id, markdown, body, html, targets, author, source, source_event_id, scheduled_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
    [c.id, c.markdown, c.body, c.html, JSON.stringify(c.targets), c.author, c.source, c.sourceEventId, c.scheduledAt],
  );
}

/** Inserts one attachment of a circular at its position. */
export async function insertAttachment(q: Queryable, circularId: string, position: number, a: NewAttachment): Promise<void> {
  await q.query(`INSERT INTO circular_attachments (circular_id, position, filename, mimetype, size, sha256, source_mxc, source_file) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, [
    circularId,
    position,
    a.filename,
    a.mimetype,
    a.size,
    a.sha256,
    a.sourceMxc,
    a.sourceFile === null ? null : JSON.stringify(a.sourceFile),
  ]);
}

/** Inserts one pending delivery of the circular itself per organisation. */
export async function insertDeliveries(q: Queryable, circularId: string, organisations: string[]): Promise<void> {
  await q.query("INSERT INTO circular_deliveries (circular_id, organisation_id) SELECT $1, unnest($2::text[])", [circularId, organisations]);
}

/** Refreshes the planner's statistics of circular_deliveries. */
export async function analyzeDeliveries(q: Queryable): Promise<void> {
  await q.query("ANALYZE circular_deliveries");
}

/** The number the circular's next correction gets (1 for the first). */
export async function nextRevision(q: Queryable, circularId: string): Promise<number> {
  const { rows } = await q.query<{ n: number }>("SELECT coalesce(max(revision), 0) + 1 AS n FROM circular_revisions WHERE circular_id = $1", [circularId]);
  return Number(rows[0]!.n);
}

/** Inserts a correction's text. */
export async function insertRevision(q: Queryable, circularId: string, r: NewRevision): Promise<void> {
  await q.query("INSERT INTO circular_revisions (circular_id, revision, markdown, body, html, author) VALUES ($1, $2, $3, $4, $5, $6)", [circularId, r.revision, r.markdown, r.body, r.html, r.author]);
}

/** Inserts a pending delivery of the correction for every room the original reached; answers how many. */
export async function insertCorrectionDeliveries(q: Queryable, circularId: string, revision: number): Promise<number> {
  const res = await q.query(
    `INSERT INTO circular_deliveries (circular_id, revision, organisation_id, room_id)
     SELECT circular_id, $2, organisation_id, room_id FROM circular_deliveries WHERE circular_id = $1 AND revision = 0 AND state = 'delivered'`,
    [circularId, revision],
  );
  return res.rowCount;
}

export async function findCircular(q: Queryable, id: string, forUpdate = false): Promise<CircularRow | null> {
  const { rows } = await q.query<CircularRow>(`SELECT * FROM circulars WHERE id = $1 ${forUpdate ? "FOR UPDATE" : ""}`, [id]);
  return rows[0] ?? null;
}

export async function findBySourceEvent(q: Queryable, eventId: string): Promise<CircularRow | null> {
  const { rows } = await q.query<CircularRow>("SELECT * FROM circulars WHERE source_event_id = $1", [eventId]);
  return rows[0] ?? null;
}

export async function listCirculars(q: Queryable, limit: number, before?: string): Promise<CircularRow[]> {
  const params: unknown[] = [limit];
  let where = "";
  if (before) {
    params.push(before);
    where = "WHERE created_at < (SELECT created_at FROM circulars WHERE id = $2)";
  }
  const { rows } = await q.query<CircularRow>(`SELECT * FROM circulars ${where} ORDER BY created_at DESC, id DESC LIMIT $1`, params);
  return rows;
}

export async function attachments(q: Queryable, circularId: string): Promise<AttachmentRow[]> {
  const { rows } = await q.query<AttachmentRow>("SELECT * FROM circular_attachments WHERE circular_id = $1 ORDER BY position", [circularId]);
  return rows;
}

export async function revisions(q: Queryable, circularId: string): Promise<RevisionRow[]> {
  const { rows } = await q.query<RevisionRow>("SELECT * FROM circular_revisions WHERE circular_id = $1 ORDER BY revision", [circularId]);
  return rows;
}

export async function deliveries(q: Queryable, circularId: string, revision = 0): Promise<DeliveryRow[]> {
  const { rows } = await q.query<DeliveryRow>("SELECT * FROM circular_deliveries WHERE circular_id = $1 AND revision = $2 ORDER BY organisation_id", [circularId, revision]);
  return rows;
}

/** The first ten failed deliveries of the circular itself, by organisation. */
export async function failedDeliveries(q: Queryable, circularId: string): Promise<Pick<DeliveryRow, "organisation_id" | "reason" | "last_error">[]> {
  const { rows } = await q.query<Pick<DeliveryRow, "organisation_id" | "reason" | "last_error">>("SELECT organisation_id, reason, last_error FROM circular_deliveries WHERE circular_id = $1 AND revision = 0 AND state = 'failed' ORDER BY organisation_id LIMIT 10", [circularId]);
  return rows;
}

/** Where the original reached the organisation's room, if it did. */
export async function originalDelivery(q: Queryable, circularId: string, organisationId: string): Promise<{ event_id: string; room_id: string } | null> {
  const { rows } = await q.query<{ event_id: string; room_id: string }>("SELECT event_id, room_id FROM circular_deliveries WHERE circular_id = $1 AND organisation_id = $2 AND revision = 0 AND state = 'delivered'", [circularId, organisationId]);
  return rows[0] ?? null;
}

/** Counts per revision: index 0 the circular itself, n its n-th correction. */
export async function summaries(q: Queryable, circularId: string): Promise<Map<number, Summary>> {
  const { rows } = await q.query<{ revision: number; state: DeliveryState; n: string }>("SELECT revision, state, count(*) AS n FROM circular_deliveries WHERE circular_id = $1 GROUP BY revision, state", [circularId]);
  const out = new Map<number, Summary>();
  for (const r of rows) {
    const s = out.get(r.revision) ?? { pending: 0, delivered: 0, failed: 0 };
    s[r.state] = Number(r.n);
    out.set(r.revision, s);
  }
  return out;
}

export async function setState(q: Queryable, id: string, state: CircularState, opts: { reason?: string | null; from?: CircularState[]; started?: boolean; finished?: boolean } = {}): Promise<boolean> {
  const params: unknown[] = [id, state, opts.reason ?? null];
  let guard = "";
  if (opts.from) {
    params.push(opts.from);
    guard = `AND state = ANY ($${params.length})`;
  }
  const res = await q.query(
    `UPDATE circulars SET state = $2, reason = coalesce($3, reason)
       ${opts.started ? ", started_at = coalesce(started_at, now())" : ""} ${opts.finished ? ", finished_at = now()" : ""}
     WHERE id = $1 ${guard}`,
    params,
  );
  return res.rowCount > 0;
}

/** Ends every pending delivery of a circular that will not be sent (cancelled, stopped). */
export async function failPending(q: Queryable, circularId: string, reason: string): Promise<number> {
  const res = await q.query("UPDATE circular_deliveries SET state = 'failed', reason = $2, lease_until = NULL WHERE circular_id = $1 AND state = 'pending'", [circularId, reason]);
  return res.rowCount;
}

/** Asks the circular's own worker to look again now (after a correction, or to start). */
export async function requestWork(q: Queryable, circularId: string, runAfter: Date | null = null): Promise<void> {
  await q.query(
    `INSERT INTO circular_work (circular_id, run_after) VALUES ($1, coalesce($2, now()))
     ON CONFLICT (circular_id) DO UPDATE SET state = 'pending', attempts = 0, run_after = coalesce($2, now()), last_error = NULL`,
    [circularId, runAfter],
  );
}

/** Records the message that shows the circular's progress in the staff room. */
export async function setProgressEvent(q: Queryable, circularId: string, eventId: string): Promise<void> {
  await q.query("UPDATE circulars SET progress_event_id = $2 WHERE id = $1", [circularId, eventId]);
}

/** Records an attachment's scan verdict. */
export async function setVerdict(q: Queryable, circularId: string, position: number, verdict: "clean" | "infected" | "too-large", signature: string | null): Promise<void> {
  await q.query("UPDATE circular_attachments SET verdict = $3, signature = $4 WHERE circular_id = $1 AND position = $2", [circularId, position, verdict, signature]);
}

/** Records an attachment's media: reserved (`uploaded` false: the content is still to be PUT) or holding the file. */
export async function setMedia(q: Queryable, circularId: string, position: number, mxc: string, uploaded: boolean): Promise<void> {
  await q.query("UPDATE circular_attachments SET mxc_uri = $3, media_uploaded = $4 WHERE circular_id = $1 AND position = $2", [circularId, position, mxc, uploaded]);
}

/** Records the encrypted copy's media, as setMedia does the clear one's. */
export async function setEncryptedMedia(q: Queryable, circularId: string, position: number, mxc: string, uploaded: boolean): Promise<void> {
  await q.query("UPDATE circular_attachments SET encrypted_mxc = $3, encrypted_uploaded = $4 WHERE circular_id = $1 AND position = $2", [circularId, position, mxc, uploaded]);
}

/** Records the encrypted copy's key and IV (before its upload), or its ciphertext's SHA-256 (after). */
export async function setAttachmentEncryption(q: Queryable, circularId: string, position: number, part: { key: Buffer } | { sha256: string }): Promise<void> {
  if ("key" in part) await q.query("UPDATE circular_attachments SET media_key = $3 WHERE circular_id = $1 AND position = $2", [circularId, position, part.key]);
  else await q.query("UPDATE circular_attachments SET media_sha256 = $3 WHERE circular_id = $1 AND position = $2", [circularId, position, part.sha256]);
}

/** The rooms the circular goes to (those that exist yet). */
export async function targetRooms(q: Queryable, circularId: string): Promise<string[]> {
  const { rows } = await q.query<{ room_id: string }>("SELECT DISTINCT o.room_id FROM circular_deliveries d JOIN organisations o ON o.id = d.organisation_id WHERE d.circular_id = $1 AND d.revision = 0 AND o.room_id IS NOT NULL", [circularId]);
  return rows.map((r) => r.room_id);
}

/** Keeps why a failed delivery failed. */
export async function setDeliveryReason(q: Queryable, id: string, reason: string): Promise<void> {
  await q.query("UPDATE circular_deliveries SET reason = $2 WHERE id = $1 AND state = 'failed'", [id, reason]);
}

/** Records deliveries whose events are in their rooms; answers the ids of those it recorded. */
export async function markDelivered(q: Queryable, delivered: { id: string; roomId: string; eventId: string }[], leasedBy: string): Promise<Set<string>> {
  if (delivered.length === 0) return new Set();
  // Only rows this worker still holds: one taken over meanwhile is recorded by whoever has it.
  const { rows } = await q.query<{ id: string }>(
    `UPDATE circular_deliveries d SET state = 'delivered', room_id = u.room_id, event_id = u.event_id, delivered_at = now(), lease_until = NULL, last_error = NULL
       FROM unnest($1::bigint[], $2::text[], $3::text[]) AS u(id, room_id, event_id)
      WHERE d.id = u.id AND d.leased_by = $4 AND d.state = 'pending'
      RETURNING d.id`,
    [...columnsOf(delivered, (d) => [d.id, d.roomId, d.eventId]), leasedBy],
  );
  return new Set(rows.map((r) => String(r.id)));
}

/** Records a file staff posted in the staff room (`postedAt` in milliseconds); a second time changes nothing. */
export async function recordStaffFile(q: Queryable, f: { eventId: string; roomId: string; sender: string; mxc: string; file: Record<string, unknown> | null; filename: string; mimetype: string; size: number; postedAt: number }): Promise<void> {
  await q.query(
    `INSERT INTO circular_staff_files (event_id, room_id, sender, mxc, file, filename, mimetype, size, posted_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, to_timestamp($9 / 1000.0)) ON CONFLICT (event_id) DO NOTHING`,
    [f.eventId, f.roomId, f.sender, f.mxc, f.file === null ? null : JSON.stringify(f.file), f.filename, f.mimetype, f.size, f.postedAt],
  );
}

/** The files a sender posted in a room between two times (milliseconds) that no circular has taken, oldest first. */
export async function untakenStaffFiles(q: Queryable, sender: string, roomId: string, from: number, to: number): Promise<StaffFileRow[]> {
  const { rows } = await q.query<StaffFileRow>(
    `SELECT event_id, mxc, file, filename, mimetype, size FROM circular_staff_files
      WHERE sender = $1 AND room_id = $2 AND circular_id IS NULL
        AND posted_at BETWEEN to_timestamp($3 / 1000.0) AND to_timestamp($4 / 1000.0)
      ORDER BY posted_at, event_id`,
    [sender, roomId, from, to],
  );
  return rows;
}

/** Gives a file posted in the staff room to the circular that takes it. */
export async function takeStaffFile(q: Queryable, eventId: string, circularId: string): Promise<void> {
  await q.query("UPDATE circular_staff_files SET circular_id = $2 WHERE event_id = $1", [eventId, circularId]);
}
