// SQL of the circulars, circular_revisions, circular_attachments, circular_work,
// circular_deliveries and circular_staff_files tables.
import type { Queryable } from "../db/database.ts";
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
  verdict: "clean" | "infected" | "too-large" | null;
  signature: string | null;
  mxc_uri: string | null;
  media_uploaded: boolean;
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
