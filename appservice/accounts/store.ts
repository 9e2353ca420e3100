// SQL of the clerk_accounts and account_creation tables.
import type { Queryable } from "../db/database.ts";

export type AccountState = "requested" | "letter_ready" | "letter_issued" | "failed" | "deactivated";

export interface AccountRow {
  id: string;
  matrix_id: string;
  email: string;
  display_name: string;
  organisation_id: string;
  state: AccountState;
  failure: string | null;
  marker: string;
  create_started_at: Date | null;
  created_at: Date;
  account_created_at: Date | null;
  letters_issued: number;
  letter_issued_at: Date | null;
  password_resets: number;
  deactivated_at: Date | null;
}

/** The API's view of an account (no marker: it is Kuvert's bookkeeping). */
export interface Account {
  matrixId: string;
  email: string;
  name: string;
  organisationId: string;
  state: AccountState;
  failure: string | null;
  requestedAt: string;
  createdAt: string | null;
  lettersIssued: number;
  letterIssuedAt: string | null;
  passwordResets: number;
  deactivatedAt: string | null;
  /** Organisations whose active clerk this account is. */
  organisations: string[];
}

export function present(r: AccountRow, organisations: string[]): Account {
  return {
    matrixId: r.matrix_id,
    email: r.email,
    name: r.display_name,
    organisationId: r.organisation_id,
    state: r.state,
    failure: r.failure,
    requestedAt: r.created_at.toISOString(),
    createdAt: r.account_created_at?.toISOString() ?? null,
    lettersIssued: r.letters_issued,
    letterIssuedAt: r.letter_issued_at?.toISOString() ?? null,
    passwordResets: r.password_resets,
    deactivatedAt: r.deactivated_at?.toISOString() ?? null,
    organisations,
  };
}

export async function byMatrixId(q: Queryable, matrixId: string, forUpdate = false): Promise<AccountRow | null> {
  const { rows } = await q.query<AccountRow>(`SELECT * FROM clerk_accounts WHERE matrix_id = $1 ${forUpdate ? "FOR UPDATE" : ""}`, [matrixId]);
  return rows[0] ?? null;
}

export async function byId(q: Queryable, id: string): Promise<AccountRow | null> {
  const { rows } = await q.query<AccountRow>("SELECT * FROM clerk_accounts WHERE id = $1", [id]);
  return rows[0] ?? null;
}

/** The account Kuvert made for this e-mail address and still runs, if any. */
export async function activeByEmail(q: Queryable, email: string): Promise<AccountRow | null> {
  const { rows } = await q.query<AccountRow>("SELECT * FROM clerk_accounts WHERE lower(email) = lower($1) AND state <> 'deactivated' ORDER BY id LIMIT 1", [email]);
  return rows[0] ?? null;
}

/** Matrix IDs of an organisation's clerks whose accounts do not exist yet (not to be invited). */
export async function notYetCreated(q: Queryable, organisationId: string): Promise<Set<string>> {
  const { rows } = await q.query<{ matrix_id: string }>(
    `SELECT a.matrix_id FROM clerk_accounts a JOIN clerks c ON c.matrix_id = a.matrix_id
      WHERE c.organisation_id = $1 AND a.state IN ('requested', 'failed')`,
    [organisationId],
  );
  return new Set(rows.map((r) => r.matrix_id));
}

/** Organisation ids and names where these Matrix IDs are active clerks. */
export async function organisationsOf(q: Queryable, matrixIds: string[]): Promise<Map<string, { id: string; name: string }[]>> {
  const { rows } = await q.query<{ matrix_id: string; id: string; display_name: string }>(
    `SELECT c.matrix_id, o.id, o.display_name FROM clerks c JOIN organisations o ON o.id = c.organisation_id
      WHERE c.matrix_id = ANY ($1) AND c.status = 'active' ORDER BY o.display_name`,
    [matrixIds],
  );
  const map = new Map<string, { id: string; name: string }[]>();
  for (const r of rows) map.set(r.matrix_id, [...(map.get(r.matrix_id) ?? []), { id: r.id, name: r.display_name }]);
  return map;
}

export async function list(q: Queryable, filter: { organisationId?: string | undefined; state?: AccountState | undefined }): Promise<AccountRow[]> {
  const where: string[] = [];
  const params: unknown[] = [];
  if (filter.organisationId) {
    params.push(filter.organisationId);
    where.push(`(a.organisation_id = $${params.length} OR EXISTS (SELECT 1 FROM clerks c WHERE c.matrix_id = a.matrix_id AND c.organisation_id = $${params.length} AND c.status = 'active'))`);
  }
  if (filter.state) {
    params.push(filter.state);
    where.push(`a.state = $${params.length}`);
  }
  const { rows } = await q.query<AccountRow>(`SELECT a.* FROM clerk_accounts a ${where.length ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY a.id`, params);
  return rows;
}
