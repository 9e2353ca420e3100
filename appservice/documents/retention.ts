// What retention deletes of the documents' tables and staging (run by retention/retention.ts
// through the documents module): finished documents and expanded batches after documentDays,
// and staging files no waiting document or batch needs after stagingOrphanHours.
import type { Queryable } from "../db/database.ts";
import type { KuvertConfig } from "../config/schema.ts";
import type { RetentionRule } from "../module.ts";
import type { Staging } from "./staging.ts";
import { S3Staging } from "./staging-s3.ts";
import { stagingStore } from "./staging-store.ts";

async function deleted(q: Queryable, sql: string, params: unknown[]): Promise<number> {
  return (await q.query(sql, params)).rowCount;
}

const finished = "state IN ('delivered', 'rejected', 'checked', 'removed', 'failed') AND finished_at < $1";
const oldBatches = "state IN ('expanded', 'rejected') AND expanded_at < $1 AND NOT EXISTS (SELECT 1 FROM documents d WHERE d.batch_id = batches.id)";

/** Staging files that no waiting document or batch needs any more (left by a crash), older than the limit. */
async function staleStagingFiles(db: Queryable, staging: Staging, olderThan: Date): Promise<string[]> {
  const stale: string[] = [];
  for await (const { name, modified } of staging.entries()) {
    if (modified >= olderThan) continue;
    const id = name.replace(/\.part$/, "");
    const waiting = await db.query(
      `SELECT 1 FROM documents WHERE id = $1 AND state IN ('received', 'scanning', 'held')
       UNION ALL SELECT 1 FROM batches WHERE id = $1 AND state = 'received'`,
      [id],
    );
    if (waiting.rowCount === 0 || name.endsWith(".part")) stale.push(name);
  }
  return stale;
}

/** Removes what is stale in the documents' staging store, and (with S3) local copies a crash left of either staging area. */
async function sweepStaging(db: Queryable, config: KuvertConfig, olderThan: Date): Promise<number> {
  const documents = stagingStore(config, "documents");
  const circulars = stagingStore(config, "circulars");
  try {
    const stale = await staleStagingFiles(db, documents, olderThan);
    for (const name of stale) await documents.remove(name);
    let count = stale.length;
    for (const store of [documents, circulars]) {
      if (store instanceof S3Staging) count += await store.removeStaleCopies(olderThan);
    }
    return count;
  } finally {
    await documents.close();
    await circulars.close();
  }
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
  { count: "stagingFiles", when: "after", run: (q, cut, config) => sweepStaging(q, config, cut.stagingOrphans) },
];
