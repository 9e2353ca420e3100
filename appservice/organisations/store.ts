// SQL of the organisations, clerks, staff_members and room_sync tables.
import type { Queryable } from "../db/database.ts";
import type { Clerk, ClerkInput, Organisation } from "./model.ts";

interface OrganisationRow {
  id: string;
  display_name: string;
  tags: string[];
  state: "active" | "archived";
  room_id: string | null;
  room_state: "pending" | "ready" | "lost";
  room_problem: string | null;
  power_levels_problem: string | null;
  welcome_event_id: string | null;
  archive_notice_event_id: string | null;
  created_at: Date;
  updated_at: Date;
  archived_at: Date | null;
}

interface ClerkRow {
  id: string;
  organisation_id: string;
  matrix_id: string | null;
  email: string | null;
  display_name: string | null;
  status: "active" | "removed";
  membership: string | null;
}

export interface StoredOrganisation extends Organisation {
  welcomeEventId: string | null;
  archiveNoticeEventId: string | null;
}

function toClerk(r: ClerkRow): Clerk {
  return { id: r.id, matrixId: r.matrix_id, email: r.email, name: r.display_name, status: r.status, membership: r.membership };
}

function toOrganisation(r: OrganisationRow, clerks: ClerkRow[]): StoredOrganisation {
  return {
    id: r.id,
    name: r.display_name,
    tags: r.tags,
    state: r.state,
    roomId: r.room_id,
    roomState: r.room_state,
    roomProblem: r.room_problem,
    powerLevelsProblem: r.power_levels_problem,
    createdAt: r.created_at.toISOString(),
    updatedAt: r.updated_at.toISOString(),
    archivedAt: r.archived_at?.toISOString() ?? null,
    welcomeEventId: r.welcome_event_id,
    archiveNoticeEventId: r.archive_notice_event_id,
    clerks: clerks.filter((c) => c.organisation_id === r.id).map(toClerk),
  };
}

/** The key that identifies a clerk within an organisation. */
export function clerkKey(c: { matrixId?: string | null | undefined; email?: string | null | undefined }): string {
  return c.matrixId ? c.matrixId : `email:${(c.email ?? "").toLowerCase()}`;
}

// An organisation with its clerks in one round trip (it is read for every document delivered).
const withClerks = `SELECT o.*, (SELECT coalesce(json_agg(json_build_object('id', c.id::text, 'organisation_id', c.organisation_id, 'matrix_id', c.matrix_id, 'email', c.email,
    'display_name', c.display_name, 'status', c.status, 'membership', c.membership) ORDER BY c.id), '[]') FROM clerks c WHERE c.organisation_id = o.id) AS clerks
  FROM organisations o`;

async function organisationWhere(q: Queryable, where: string, value: string, forUpdate = false): Promise<StoredOrganisation | null> {
  const { rows } = await q.query<OrganisationRow & { clerks: ClerkRow[] }>(`${withClerks} WHERE ${where} = $1${forUpdate ? " FOR UPDATE" : ""}`, [value]);
  const row = rows[0];
  return row ? toOrganisation(row, row.clerks) : null;
}

export function findOrganisation(q: Queryable, id: string, forUpdate = false): Promise<StoredOrganisation | null> {
  return organisationWhere(q, "o.id", id, forUpdate);
}

export function findOrganisationByRoom(q: Queryable, roomId: string): Promise<StoredOrganisation | null> {
  return organisationWhere(q, "o.room_id", roomId);
}

export interface ListFilter {
  tag?: string | undefined;
  state?: "active" | "archived" | undefined;
  search?: string | undefined;
  limit?: number | undefined;
  after?: string | undefined;
}

export async function listOrganisations(q: Queryable, filter: ListFilter = {}): Promise<StoredOrganisation[]> {
  const where: string[] = [];
  const params: unknown[] = [];
  if (filter.tag) {
    params.push(filter.tag);
    where.push(`$${params.length} = ANY (tags)`);
  }
  if (filter.state) {
    params.push(filter.state);
    where.push(`state = $${params.length}`);
  }
  if (filter.search) {
    params.push(`%${filter.search.replace(/[\\%_]/g, (m) => `\\${m}`)}%`);
    where.push(`(id ILIKE $${params.length} OR display_name ILIKE $${params.length})`);
  }
  if (filter.after) {
    params.push(filter.after);
    where.push(`id > $${params.length}`);
  }
  params.push(filter.limit ?? 1000);
  const { rows } = await q.query<OrganisationRow>(`SELECT * FROM organisations ${where.length ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY id LIMIT $${params.length}`, params);
  if (rows.length === 0) return [];
  const clerks = await q.query<ClerkRow>("SELECT * FROM clerks WHERE organisation_id = ANY ($1) ORDER BY id", [rows.map((r) => r.id)]);
  return rows.map((r) => toOrganisation(r, clerks.rows));
}

/** Inserts the organisation if it is new; answers whether it did. */
export async function insertOrganisation(q: Queryable, id: string, name: string, tags: string[]): Promise<boolean> {
  const res = await q.query("INSERT INTO organisations (id, display_name, tags) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING", [id, name, tags]);
  return res.rowCount > 0;
}

export async function updateOrganisation(q: Queryable, id: string, name: string, tags: string[]): Promise<void> {
  await q.query("UPDATE organisations SET display_name = $2, tags = $3, updated_at = now() WHERE id = $1", [id, name, tags]);
}

export async function archiveOrganisation(q: Queryable, id: string): Promise<void> {
  await q.query("UPDATE organisations SET state = 'archived', archived_at = now(), updated_at = now() WHERE id = $1", [id]);
}

export async function addClerk(q: Queryable, organisationId: string, c: ClerkInput, removed: Clerk | undefined): Promise<void> {
  if (removed) {
    await q.query("UPDATE clerks SET status = 'active', removed_at = NULL, email = $2, display_name = $3, matrix_id = $4 WHERE id = $1", [removed.id, c.email ?? null, c.name ?? null, c.matrixId ?? null]);
    return;
  }
  await q.query("INSERT INTO clerks (organisation_id, matrix_id, email, display_name) VALUES ($1, $2, $3, $4)", [organisationId, c.matrixId ?? null, c.email ?? null, c.name ?? null]);
}

export async function updateClerk(q: Queryable, clerkId: string, c: ClerkInput): Promise<void> {
  await q.query("UPDATE clerks SET email = $2, display_name = $3 WHERE id = $1", [clerkId, c.email ?? null, c.name ?? null]);
}

export async function removeClerk(q: Queryable, clerkId: string): Promise<void> {
  await q.query("UPDATE clerks SET status = 'removed', removed_at = now() WHERE id = $1", [clerkId]);
}

export async function setRoom(q: Queryable, id: string, roomId: string): Promise<void> {
  await q.query("UPDATE organisations SET room_id = $2, room_state = 'ready', room_problem = NULL WHERE id = $1", [id, roomId]);
}

export async function setRoomState(q: Queryable, id: string, state: "ready" | "lost", problem: string | null): Promise<void> {
  await q.query("UPDATE organisations SET room_state = $2, room_problem = $3 WHERE id = $1", [id, state, problem]);
}

export async function setNoticeEvent(q: Queryable, id: string, column: "welcome_event_id" | "archive_notice_event_id", eventId: string): Promise<void> {
  await q.query(`UPDATE organisations SET ${column} = $2 WHERE id = $1`, [id, eventId]);
}

/**
 * Records a clerk's membership. `keepJoin`: an invitation Kuvert just sent does not replace a join
 * recorded meanwhile (the clerk accepted before the room worker got to write its invite).
 */
export async function setClerkMembership(q: Queryable, organisationId: string, matrixId: string, membership: string | null, opts: { keepJoin?: boolean } = {}): Promise<void> {
  await q.query(`UPDATE clerks SET membership = $3 WHERE organisation_id = $1 AND matrix_id = $2 AND membership IS DISTINCT FROM $3${opts.keepJoin ? " AND membership IS DISTINCT FROM 'join'" : ""}`, [organisationId, matrixId, membership]);
}

/** Asks for the organisation's room to be brought in line with the database. */
export async function requestRoomSync(q: Queryable, organisationId: string): Promise<void> {
  await q.query(
    `INSERT INTO room_sync (organisation_id) VALUES ($1)
     ON CONFLICT (organisation_id) DO UPDATE
       SET state = 'pending', generation = room_sync.generation + 1, requested_at = now(), attempts = 0, run_after = now(), last_error = NULL`,
    [organisationId],
  );
}

export async function requestRoomSyncForAll(q: Queryable): Promise<number> {
  const res = await q.query(
    `INSERT INTO room_sync (organisation_id) SELECT id FROM organisations
     ON CONFLICT (organisation_id) DO UPDATE
       SET state = 'pending', generation = room_sync.generation + 1, requested_at = now(), attempts = 0, run_after = now(), last_error = NULL`,
  );
  return res.rowCount;
}

export interface StaffRow {
  matrix_id: string;
  roles: string[];
  status: "active" | "removed";
}

export async function staffMembers(q: Queryable): Promise<StaffRow[]> {
  return (await q.query<StaffRow>("SELECT matrix_id, roles, status FROM staff_members ORDER BY matrix_id")).rows;
}

export async function upsertStaff(q: Queryable, matrixId: string, roles: string[], status: "active" | "removed"): Promise<void> {
  await q.query(
    `INSERT INTO staff_members (matrix_id, roles, status) VALUES ($1, $2, $3)
     ON CONFLICT (matrix_id) DO UPDATE SET roles = $2, status = $3, updated_at = now()`,
    [matrixId, roles, status],
  );
}

/** Ids and states of organisations: every active one, those with a tag, or those with these ids (in id order). */
export async function organisationStates(q: Queryable, which: { active: true } | { tag: string } | { ids: string[] }): Promise<{ id: string; state: string }[]> {
  if ("active" in which) return (await q.query<{ id: string; state: string }>("SELECT id, state FROM organisations WHERE state = 'active' ORDER BY id")).rows;
  if ("tag" in which) return (await q.query<{ id: string; state: string }>("SELECT id, state FROM organisations WHERE $1 = ANY (tags) ORDER BY id", [which.tag])).rows;
  return (await q.query<{ id: string; state: string }>("SELECT id, state FROM organisations WHERE id = ANY ($1) ORDER BY id", [which.ids])).rows;
}

/** An organisation with its room and its active clerks' e-mail addresses (lower case): where a message for it goes. */
export interface OrganisationRecipients {
  id: string;
  name: string;
  state: string;
  room_id: string | null;
  room_state: string;
  room_problem: string | null;
  emails: string[];
}

export async function organisationRecipients(q: Queryable, id: string): Promise<OrganisationRecipients | null> {
  const { rows } = await q.query<OrganisationRecipients>(
    `SELECT o.id, o.display_name AS name, o.state, o.room_id, o.room_state, o.room_problem,
            coalesce(array_agg(DISTINCT lower(c.email)) FILTER (WHERE c.status = 'active' AND c.email IS NOT NULL), '{}') AS emails
       FROM organisations o LEFT JOIN clerks c ON c.organisation_id = o.id
      WHERE o.id = $1 GROUP BY o.id`,
    [id],
  );
  return rows[0] ?? null;
}

/** Organisations to pick from in the console: by part of id or name, limited to `only` when given (a caller's own). */
export async function pickableOrganisations(q: Queryable, search: string | null, only: string[] | null): Promise<{ id: string; display_name: string; tags: string[]; state: string; room_state: string }[]> {
  const { rows } = await q.query<{ id: string; display_name: string; tags: string[]; state: string; room_state: string }>(
    `SELECT id, display_name, tags, state, room_state FROM organisations
      WHERE ($1::text IS NULL OR strpos(lower(id), lower($1)) > 0 OR strpos(lower(display_name), lower($1)) > 0)
        AND ($2::text[] IS NULL OR id = ANY ($2))
      ORDER BY display_name, id LIMIT 5000`,
    [search, only],
  );
  return rows;
}
