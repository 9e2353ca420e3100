// Interactive verifications of the bot's device, as rows: the device's owner records where each
// stands (device.ts's verifications()), anyone with the admin scope reads them and decides, once
// the emoji are there, whether they match what Element shows; the owner then confirms or cancels.
import type { Database } from "../db/database.ts";
import type { VerificationState } from "./device.ts";

export interface VerificationView extends VerificationState {
  decision: "match" | "mismatch" | null;
  decidedBy: string | null;
  createdAt: string;
  updatedAt: string;
}

interface Row {
  flow_id: string;
  user_id: string;
  device_id: string | null;
  state: VerificationState["state"];
  emoji: VerificationState["emoji"];
  reason: string | null;
  decision: "match" | "mismatch" | null;
  decided_by: string | null;
  created_at: Date;
  updated_at: Date;
}

function view(r: Row): VerificationView {
  return { flowId: r.flow_id, userId: r.user_id, deviceId: r.device_id, state: r.state, emoji: r.emoji, reason: r.reason, decision: r.decision, decidedBy: r.decided_by, createdAt: r.created_at.toISOString(), updatedAt: r.updated_at.toISOString() };
}

/** Records where verifications stand (a decision once made stays). */
export async function recordVerifications(db: Database, states: VerificationState[]): Promise<void> {
  for (const s of states) {
    await db.query(
      `INSERT INTO e2ee_verifications (flow_id, user_id, device_id, state, emoji, reason) VALUES ($1, $2, $3, $4, $5, $6)
       ON CONFLICT (flow_id) DO UPDATE SET state = EXCLUDED.state, emoji = coalesce(EXCLUDED.emoji, e2ee_verifications.emoji),
         reason = EXCLUDED.reason, device_id = coalesce(EXCLUDED.device_id, e2ee_verifications.device_id), updated_at = now()
       WHERE e2ee_verifications.state IS DISTINCT FROM EXCLUDED.state OR e2ee_verifications.emoji IS DISTINCT FROM coalesce(EXCLUDED.emoji, e2ee_verifications.emoji)`,
      [s.flowId, s.userId, s.deviceId, s.state, s.emoji === null ? null : JSON.stringify(s.emoji), s.reason],
    );
  }
}

/** Decisions the owner has yet to carry out. */
export async function undoneDecisions(db: Database): Promise<{ flowId: string; userId: string; match: boolean }[]> {
  const { rows } = await db.query<{ flow_id: string; user_id: string; decision: string }>("SELECT flow_id, user_id, decision FROM e2ee_verifications WHERE state = 'comparing' AND decision IS NOT NULL");
  return rows.map((r) => ({ flowId: r.flow_id, userId: r.user_id, match: r.decision === "match" }));
}

/** The verifications of the last day, newest first. */
export async function listVerifications(db: Database): Promise<VerificationView[]> {
  const { rows } = await db.query<Row>("SELECT * FROM e2ee_verifications WHERE updated_at > now() - interval '1 day' ORDER BY created_at DESC LIMIT 50");
  return rows.map(view);
}

/** Records a person's decision on a verification whose emoji are there; null when it is not (any more) waiting for one. */
export async function decideVerification(db: Database, flowId: string, match: boolean, actor: string): Promise<VerificationView | null> {
  const { rows } = await db.query<Row>("UPDATE e2ee_verifications SET decision = $2, decided_by = $3, updated_at = now() WHERE flow_id = $1 AND state = 'comparing' AND decision IS NULL RETURNING *", [flowId, match ? "match" : "mismatch", actor]);
  return rows[0] ? view(rows[0]) : null;
}

export async function findVerification(db: Database, flowId: string): Promise<VerificationView | null> {
  const { rows } = await db.query<Row>("SELECT * FROM e2ee_verifications WHERE flow_id = $1", [flowId]);
  return rows[0] ? view(rows[0]) : null;
}
