// SQL of the calls and guest_links tables (migrations/006_calls.sql).
import type { Queryable } from "../db/database.ts";
import type { QueueRow } from "../workers/queue.ts";

export interface CallRow extends QueueRow {
  id: string;
  organisation_id: string;
  room_id: string;
  widget_id: string;
  conference_id: string;
  room_name: string;
  auth: string | null;
  started_by: string;
  started_at: Date;
  expires_at: Date;
  ended_at: Date | null;
  ended_by: string | null;
  end_reason: "ended" | "expired" | null;
  widget_event_id: string | null;
  phase: "post" | "remove";
  state: "pending" | "done" | "failed";
  run_after: Date;
}

export interface GuestLinkRow {
  id: string;
  call_id: string;
  guest_name: string;
  email: string;
  created_by: string;
  created_at: Date;
  expires_at: Date;
  revoked_at: Date | null;
  revoked_by: string | null;
}

export interface NewCall {
  id: string;
  organisationId: string;
  roomId: string;
  widgetId: string;
  conferenceId: string;
  roomName: string;
  auth: string | null;
  startedBy: string;
  /** How long the call runs. */
  minutes: number;
  /** When the worker takes over posting the widget. */
  postWithinSeconds: number;
}

export interface CallFilter {
  running?: boolean | undefined;
  organisationId?: string | undefined;
  limit: number;
}

export interface NewGuestLink {
  id: string;
  callId: string;
  guestName: string;
  email: string;
  createdBy: string;
  createdAt: Date;
  expiresAt: Date;
}

/** The call with this id, or null. */
export async function findCall(q: Queryable, id: string, forUpdate = false): Promise<CallRow | null> {
  return (await q.query<CallRow>(`SELECT * FROM calls WHERE id = $1${forUpdate ? " FOR UPDATE" : ""}`, [id])).rows[0] ?? null;
}

/** The organisation's call not yet ended (its time may be up), locked; or null. */
export async function lockOpenCall(q: Queryable, organisationId: string): Promise<CallRow | null> {
  return (await q.query<CallRow>("SELECT * FROM calls WHERE organisation_id = $1 AND ended_at IS NULL FOR UPDATE", [organisationId])).rows[0] ?? null;
}

/** The organisation's running call (not ended, time not up), or null. */
export async function runningCallOf(q: Queryable, organisationId: string): Promise<CallRow | null> {
  return (await q.query<CallRow>("SELECT * FROM calls WHERE organisation_id = $1 AND ended_at IS NULL AND expires_at > now()", [organisationId])).rows[0] ?? null;
}

/** The organisation a call belongs to, or null for an unknown call. */
export async function organisationOfCall(q: Queryable, id: string): Promise<string | null> {
  return (await q.query<{ organisation_id: string }>("SELECT organisation_id FROM calls WHERE id = $1", [id])).rows[0]?.organisation_id ?? null;
}

/** Calls, newest first. */
export async function listCalls(q: Queryable, filter: CallFilter): Promise<CallRow[]> {
  const where: string[] = [];
  const params: unknown[] = [];
  if (filter.running === true) where.push("ended_at IS NULL AND expires_at > now()");
  if (filter.running === false) where.push("(ended_at IS NOT NULL OR expires_at <= now())");
  if (filter.organisationId) {
    params.push(filter.organisationId);
    where.push(`organisation_id = $${params.length}`);
  }
  params.push(filter.limit);
  const { rows } = await q.query<CallRow>(`SELECT * FROM calls ${where.length ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY started_at DESC LIMIT $${params.length}`, params);
  return rows;
}

/** Inserts a call in phase 'post', its widget due for posting; answers the new row. */
export async function insertCall(q: Queryable, c: NewCall): Promise<CallRow> {
  const { rows } = await q.query<CallRow>(
    `INSERT INTO calls (id, organisation_id, room_id, widget_id, conference_id, room_name, auth, started_by, expires_at, run_after)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now() + make_interval(mins => $9), now() + make_interval(secs => $10)) RETURNING *`,
    [c.id, c.organisationId, c.roomId, c.widgetId, c.conferenceId, c.roomName, c.auth, c.startedBy, c.minutes, c.postWithinSeconds],
  );
  return rows[0]!;
}

/** Records the widget's state event. */
export async function setWidgetEvent(q: Queryable, id: string, eventId: string): Promise<void> {
  await q.query("UPDATE calls SET widget_event_id = $2 WHERE id = $1", [id, eventId]);
}

/** After the widget was posted at once: its removal becomes due at the expiry, unless a worker holds the call. */
export async function markPosted(q: Queryable, id: string): Promise<void> {
  await q.query("UPDATE calls SET phase = 'remove', run_after = expires_at, attempts = 0, last_error = NULL WHERE id = $1 AND phase = 'post' AND lease_until IS NULL", [id]);
}

/** After the worker posted the widget: its removal becomes due at the expiry, and the lease ends. */
export async function markPostedByWorker(q: Queryable, id: string, workerId: string): Promise<void> {
  await q.query("UPDATE calls SET phase = 'remove', run_after = expires_at, attempts = 0, lease_until = NULL, leased_by = NULL, last_error = NULL WHERE id = $1 AND leased_by = $2 AND phase = 'post'", [id, workerId]);
}

/** Records why the last attempt on the call's widget failed. */
export async function setLastError(q: Queryable, id: string, message: string): Promise<void> {
  await q.query("UPDATE calls SET last_error = $2 WHERE id = $1", [id, message]);
}

/** Ends the call now, by actor; its widget's removal becomes due. Answers the updated row. */
export async function endCall(q: Queryable, id: string, actor: string): Promise<CallRow> {
  const { rows } = await q.query<CallRow>(
    `UPDATE calls SET ended_at = now(), ended_by = $2, end_reason = 'ended', phase = 'remove', state = 'pending', run_after = now(), attempts = 0
          WHERE id = $1 RETURNING *`,
    [id, actor],
  );
  return rows[0]!;
}

/** Ends an open call as expired at its expiry; its widget's removal becomes due. */
export async function markExpired(q: Queryable, id: string): Promise<void> {
  await q.query(
    `UPDATE calls SET ended_at = expires_at, ended_by = 'kuvert', end_reason = 'expired', phase = 'remove', state = 'pending', run_after = now(), attempts = 0
        WHERE id = $1 AND ended_at IS NULL`,
    [id],
  );
}

/** After the widget was removed at once: done, unless a worker holds the call. */
export async function markRemoved(q: Queryable, id: string): Promise<void> {
  await q.query("UPDATE calls SET state = 'done', last_error = NULL WHERE id = $1 AND state = 'pending' AND phase = 'remove' AND (lease_until IS NULL OR lease_until < now())", [id]);
}

/** After the worker removed the widget: done, and the lease ends. */
export async function markRemovedByWorker(q: Queryable, id: string): Promise<void> {
  await q.query("UPDATE calls SET state = 'done', lease_until = NULL, last_error = NULL WHERE id = $1", [id]);
}

/** The guest link with this id, or null. */
export async function findGuestLink(q: Queryable, id: string, forUpdate = false): Promise<GuestLinkRow | null> {
  return (await q.query<GuestLinkRow>(`SELECT * FROM guest_links WHERE id = $1${forUpdate ? " FOR UPDATE" : ""}`, [id])).rows[0] ?? null;
}

/** A call's guest links, oldest first. */
export async function guestLinksOf(q: Queryable, callId: string): Promise<GuestLinkRow[]> {
  const { rows } = await q.query<GuestLinkRow>("SELECT * FROM guest_links WHERE call_id = $1 ORDER BY created_at", [callId]);
  return rows;
}

/** Records a guest link issued for a call. */
export async function insertGuestLink(q: Queryable, l: NewGuestLink): Promise<void> {
  await q.query("INSERT INTO guest_links (id, call_id, guest_name, email, created_by, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)", [l.id, l.callId, l.guestName, l.email, l.createdBy, l.createdAt, l.expiresAt]);
}

/** Withdraws the guest link now, by actor; answers the updated row. */
export async function revokeLink(q: Queryable, id: string, actor: string): Promise<GuestLinkRow> {
  return (await q.query<GuestLinkRow>("UPDATE guest_links SET revoked_at = now(), revoked_by = $2 WHERE id = $1 RETURNING *", [id, actor])).rows[0]!;
}

/** Replaces name and address on the guest links sent to an address by the pseudonym, withdrawing those still valid; answers how many. */
export async function eraseGuestLinks(q: Queryable, email: string, pseudonym: string, actor: string): Promise<number> {
  return (await q.query("UPDATE guest_links SET guest_name = $2, email = $2, revoked_at = coalesce(revoked_at, now()), revoked_by = coalesce(revoked_by, $3) WHERE lower(email) = $1", [email, pseudonym, actor])).rowCount;
}
