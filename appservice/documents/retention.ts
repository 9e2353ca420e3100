// What retention deletes of the documents' tables and staging (run by retention/retention.ts
// through the documents module): finished documents and expanded batches after documentDays,
// and staging files no waiting document or batch needs after stagingOrphanHours.
import type { Queryable } from "../db/database.ts";
import { sweepStagingArea } from "../files/staging-store.ts";
import type { RetentionRule } from "../module.ts";

async function deleted(q: Queryable, sql: string, params: unknown[]): Promise<number> {
  return (await q.query(sql, params)).rowCount;
}

const finished = "state IN ('delivered', 'rejected', 'checked', 'removed', 'failed') AND finished_at < $1";
const oldBatches = "state IN ('expanded', 'rejected') AND expanded_at < $1 AND NOT EXISTS (SELECT 1 FROM documents d WHERE d.batch_id = batches.id)";

/** Whether a waiting document or batch needs the staging file `id`. */
async function waitingFor(db: Queryable, id: string): Promise<boolean> {
  const waiting = await db.query(
    `SELECT 1 FROM documents WHERE id = $1 AND state IN ('received', 'scanning', 'held')
     UNION ALL SELECT 1 FROM batches WHERE id = $1 AND state = 'received'`,
    [id],
  );
  return waiting.rowCount > 0;
}

export const documentRetention: readonly RetentionRule[] = [
  // A finished document goes with its work items and its lines in batches.
  {
    count: "workItems",
    run: async (q, cut) => {
      await q.query(`DELETE FROM batch_entries WHERE document_id IN (SELECT id FROM documents WHERE ${finished})`, [cut.documents]);
      return deleted(q, `DELETE FROM document_work WHERE document_id IN (SELECT id FROM documents WHERE ${finished})`, [cut.documents]);
    },
  },
  { count: "documents", run: (q, cut) => deleted(q, `DELETE FROM documents WHERE ${finished}`, [cut.documents]) },
  // A batch goes once none of its documents is left.
  {
    count: "workItems",
    run: async (q, cut) => {
      await q.query(`DELETE FROM batch_entries WHERE batch_id IN (SELECT id FROM batches WHERE ${oldBatches})`, [cut.documents]);
      return deleted(q, `DELETE FROM batch_work WHERE batch_id IN (SELECT id FROM batches WHERE ${oldBatches})`, [cut.documents]);
    },
  },
  { count: "batches", run: (q, cut) => deleted(q, `DELETE FROM batches WHERE ${oldBatches}`, [cut.documents]) },
  {
    count: "stagingFiles",
    when: "after",
    run: (q, cut, config) => sweepStagingArea(config, "documents", config.documents.stagingDir, cut.stagingOrphans, (id) => waitingFor(q, id)),
  },
];
