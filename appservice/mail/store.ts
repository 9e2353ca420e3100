// Reads and changes of mail_outbox that other domains need (the console's page of e-mails given
// up, a document's notification counts): the mail domain owns the table, they call these.
import type { Queryable } from "../db/database.ts";

export interface DeadMail {
  id: string;
  kind: string;
  recipient: string;
  organisation_id: string | null;
  organisation_name: string | null;
  attempts: number;
  last_error: string | null;
  created_at: Date;
  /** The e-mail itself and the notifications it combined. */
  notifications: string;
}

/** The e-mails given up (each with the notifications it combined), newest first: what a retry would send again. */
export async function deadMails(q: Queryable, limit = 500): Promise<DeadMail[]> {
  const { rows } = await q.query<DeadMail>(
    `SELECT m.id, m.kind, m.recipient, m.organisation_id, m.organisation_name, m.attempts, m.last_error, m.created_at,
            1 + (SELECT count(*) FROM mail_outbox c WHERE c.combined_into = m.id AND c.state = 'dead') AS notifications
       FROM mail_outbox m WHERE m.state = 'dead' AND m.combined_into IS NULL ORDER BY m.id DESC LIMIT $1`,
    [limit],
  );
  return rows;
}

/**
 * Makes a given-up e-mail and the notifications it combined pending again, from attempt one.
 * Returns how many rows that were, or null when there is no such given-up e-mail (the caller audits).
 */
export async function retryDeadMail(tx: Queryable, id: string): Promise<number | null> {
  const head = await tx.query("SELECT 1 FROM mail_outbox WHERE id = $1 AND state = 'dead' AND combined_into IS NULL FOR UPDATE", [id]);
  if (head.rowCount === 0) return null;
  const { rowCount } = await tx.query(
    `UPDATE mail_outbox SET state = 'pending', attempts = 0, run_after = now(), lease_until = NULL, leased_by = NULL, last_error = NULL, combined_into = NULL
      WHERE (id = $1 OR combined_into = $1) AND state = 'dead'`,
    [id],
  );
  return rowCount ?? 0;
}

/** How many notifications whose dedupe key starts with `prefix` are in each state. */
export async function notificationStates(q: Queryable, prefix: string): Promise<{ state: string; n: number }[]> {
  const { rows } = await q.query<{ state: string; n: string }>("SELECT state, count(*) AS n FROM mail_outbox WHERE left(dedupe_key, length($1)) = $1 GROUP BY state", [prefix]);
  return rows.map((r) => ({ state: r.state, n: Number(r.n) }));
}
