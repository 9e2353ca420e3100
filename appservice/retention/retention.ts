// Retention: Kuvert keeps what it stores only as long as configured. One run deletes what is
// due in each category and writes one audit row with the counts. Several Kuvert processes may
// share a database: an advisory lock lets one of them run at a time.
import { audit } from "../audit/audit.ts";
import type { KuvertConfig } from "../config/schema.ts";
import type { Database, Queryable } from "../db/database.ts";
import type { Staging } from "../documents/staging.ts";
import { S3Staging } from "../documents/staging-s3.ts";
import { stagingStore } from "../documents/staging-store.ts";
import { logger } from "../log.ts";
import type { RetentionCutoffs } from "../module.ts";
import { modules } from "../modules.ts";
import { forgetExpiredOpenIdTokens } from "../tokens/openid-purpose.ts";

const log = logger("retention");
const RETENTION_LOCK = 7_410_003;
const DAY = 24 * 60 * 60 * 1000;

export interface RetentionCounts {
  documents: number;
  batches: number;
  mail: number;
  inboundEvents: number;
  transactions: number;
  workItems: number;
  auditRows: number;
  stagingFiles: number;
  /** Remembered OpenID tokens (keyed hashes) past their expiry. */
  openIdTokens: number;
  /**
   * The modules' counts, by the names their retention rules give (calls: guestLinks, guest links
   * expired more than mailDays ago; calls, calls ended more than documentDays ago). A rule that
   * counts workItems adds to the core's.
   */
  [moduleCount: string]: number;
}

async function deleted(q: Queryable, sql: string, params: unknown[]): Promise<number> {
  return (await q.query(sql, params)).rowCount;
}

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

/** Removes what retention finds stale in the documents' staging store, and (with S3) local copies a crash left. */
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

export async function runRetention(db: Database, config: KuvertConfig, now: Date = new Date()): Promise<RetentionCounts | null> {
  const r = config.retention;
  const before = (days: number) => new Date(now.getTime() - days * DAY);
  const counts = await db.transaction(async (tx): Promise<RetentionCounts | null> => {
    const locked = await tx.query<{ ok: boolean }>("SELECT pg_try_advisory_xact_lock($1) AS ok", [RETENTION_LOCK]);
    if (!locked.rows[0]?.ok) return null;
    const documentsCutoff = before(r.documentDays);
    const finished = "state IN ('delivered', 'rejected', 'checked', 'removed', 'failed') AND finished_at < $1";
    await tx.query(`DELETE FROM batch_entries WHERE document_id IN (SELECT id FROM documents WHERE ${finished})`, [documentsCutoff]);
    let workItems = await deleted(tx, `DELETE FROM document_work WHERE document_id IN (SELECT id FROM documents WHERE ${finished})`, [documentsCutoff]);
    const documents = await deleted(tx, `DELETE FROM documents WHERE ${finished}`, [documentsCutoff]);
    const oldBatches = "state IN ('expanded', 'rejected') AND expanded_at < $1 AND NOT EXISTS (SELECT 1 FROM documents d WHERE d.batch_id = batches.id)";
    await tx.query(`DELETE FROM batch_entries WHERE batch_id IN (SELECT id FROM batches WHERE ${oldBatches})`, [documentsCutoff]);
    workItems += await deleted(tx, `DELETE FROM batch_work WHERE batch_id IN (SELECT id FROM batches WHERE ${oldBatches})`, [documentsCutoff]);
    const batches = await deleted(tx, `DELETE FROM batches WHERE ${oldBatches}`, [documentsCutoff]);

    // Combined rows point at the row whose e-mail carried them: those go first.
    const mailCutoff = before(r.mailDays);
    let mail = await deleted(tx, "DELETE FROM mail_outbox WHERE state = 'combined' AND created_at < $1", [mailCutoff]);
    mail += await deleted(tx, "DELETE FROM mail_outbox m WHERE state IN ('sent', 'dead') AND created_at < $1 AND NOT EXISTS (SELECT 1 FROM mail_outbox c WHERE c.combined_into = m.id)", [mailCutoff]);

    // OpenID tokens are remembered (as keyed hashes) only until long after they stopped working.
    const openIdTokens = await forgetExpiredOpenIdTokens(tx, now);

    const opsCutoff = before(r.operationalDays);
    const inboundEvents = await deleted(tx, "DELETE FROM inbound_events WHERE state IN ('done', 'failed') AND received_at < $1", [opsCutoff]);
    const transactions = await deleted(tx, "DELETE FROM appservice_transactions WHERE received_at < $1", [opsCutoff]);
    workItems += await deleted(tx, "DELETE FROM room_sync WHERE state = 'done' AND requested_at < $1", [opsCutoff]);

    // Each module's rules, in list order, switched on or not: its tables exist either way.
    const cutoffs: RetentionCutoffs = { now, documents: documentsCutoff, mail: mailCutoff, operational: opsCutoff };
    const fromModules: Record<string, number> = {};
    for (const rule of modules.flatMap((m) => m.retention ?? [])) fromModules[rule.count] = (fromModules[rule.count] ?? 0) + (await rule.run(tx, cutoffs));
    workItems += fromModules.workItems ?? 0;
    delete fromModules.workItems;

    // The audit log: only a prefix of the chain, only rows older than the legal period.
    const auditCutoff = new Date(now.getTime() - r.auditYears * 365.25 * DAY);
    const last = (
      await tx.query<{ seq: string; hash: string }>(
        `SELECT seq, hash FROM audit_log
          WHERE at < $1 AND seq < COALESCE((SELECT min(seq) FROM audit_log WHERE at >= $1), 9223372036854775807)
          ORDER BY seq DESC LIMIT 1`,
        [auditCutoff],
      )
    ).rows[0];
    let auditRows = 0;
    if (last) {
      await tx.query("SELECT set_config('kuvert.audit_prune_before', $1, true)", [auditCutoff.toISOString()]);
      auditRows = await deleted(tx, "DELETE FROM audit_log WHERE seq <= $1", [last.seq]);
      await tx.query("SELECT set_config('kuvert.audit_prune_before', '', true)");
      await tx.query(
        `INSERT INTO audit_anchor (id, seq, hash) VALUES (1, $1, $2)
         ON CONFLICT (id) DO UPDATE SET seq = $1, hash = $2, pruned_at = now()`,
        [last.seq, last.hash],
      );
    }
    return { ...fromModules, documents, batches, mail, inboundEvents, transactions, workItems, auditRows, stagingFiles: 0, openIdTokens };
  });
  if (!counts) {
    log.info("another Kuvert process is running retention");
    return null;
  }
  counts.stagingFiles = await sweepStaging(db, config, new Date(now.getTime() - r.stagingOrphanHours * 60 * 60 * 1000));
  await db.transaction((tx) => audit(tx, { actor: "kuvert", action: "retention.run", outcome: "ok", details: { ...counts } }));
  log.info({ ...counts }, "retention run");
  return counts;
}

/** Runs retention every `intervalHours`, the first time an hour after start (or sooner for short intervals). */
export function scheduleRetention(db: Database, config: KuvertConfig): { stop(): void } {
  if (!config.retention.enabled) return { stop: () => undefined };
  const every = config.retention.intervalHours * 60 * 60 * 1000;
  let timer: NodeJS.Timeout = setTimeout(
    function tick() {
      runRetention(db, config).catch((err: unknown) => log.error({ err }, "retention run failed"));
      timer = setTimeout(tick, every);
      timer.unref();
    },
    Math.min(every, 60 * 60 * 1000),
  );
  timer.unref();
  return { stop: () => clearTimeout(timer) };
}
