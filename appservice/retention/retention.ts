// Retention: Kuvert keeps what it stores only as long as configured. One run deletes what is
// due in each category and writes one audit row with the counts. Several Kuvert processes may
// share a database: an advisory lock lets one of them run at a time.
import { audit } from "../audit/audit.ts";
import type { KuvertConfig } from "../config/schema.ts";
import type { Database, Queryable } from "../db/database.ts";
import { logger } from "../log.ts";
import type { RetentionCutoffs } from "../module.ts";
import { modules } from "../modules.ts";
import { forgetExpiredOpenIdTokens } from "../tokens/openid-purpose.ts";

const log = logger("retention");
const RETENTION_LOCK = 7_410_003;
const DAY = 24 * 60 * 60 * 1000;

export interface RetentionCounts {
  mail: number;
  inboundEvents: number;
  transactions: number;
  workItems: number;
  auditRows: number;
  /** Remembered OpenID tokens (keyed hashes) past their expiry. */
  openIdTokens: number;
  /**
   * The modules' counts, by the names their retention rules give (documents: documents, batches,
   * stagingFiles; calls: guestLinks, guest links expired more than mailDays ago; calls, calls ended
   * more than documentDays ago). A rule that counts workItems adds to the core's.
   */
  [moduleCount: string]: number;
}

async function deleted(q: Queryable, sql: string, params: unknown[]): Promise<number> {
  return (await q.query(sql, params)).rowCount;
}

export async function runRetention(db: Database, config: KuvertConfig, now: Date = new Date()): Promise<RetentionCounts | null> {
  const r = config.retention;
  const before = (days: number) => new Date(now.getTime() - days * DAY);
  const cutoffs: RetentionCutoffs = { now, documents: before(r.documentDays), mail: before(r.mailDays), operational: before(r.operationalDays), stagingOrphans: new Date(now.getTime() - r.stagingOrphanHours * 60 * 60 * 1000) };
  const rules = modules.flatMap((m) => m.retention ?? []);
  const counts = await db.transaction(async (tx): Promise<RetentionCounts | null> => {
    const locked = await tx.query<{ ok: boolean }>("SELECT pg_try_advisory_xact_lock($1) AS ok", [RETENTION_LOCK]);
    if (!locked.rows[0]?.ok) return null;
    // Combined rows point at the row whose e-mail carried them: those go first.
    const mailCutoff = cutoffs.mail;
    let mail = await deleted(tx, "DELETE FROM mail_outbox WHERE state = 'combined' AND created_at < $1", [mailCutoff]);
    mail += await deleted(tx, "DELETE FROM mail_outbox m WHERE state IN ('sent', 'dead') AND created_at < $1 AND NOT EXISTS (SELECT 1 FROM mail_outbox c WHERE c.combined_into = m.id)", [mailCutoff]);

    // OpenID tokens are remembered (as keyed hashes) only until long after they stopped working.
    const openIdTokens = await forgetExpiredOpenIdTokens(tx, now);

    const opsCutoff = cutoffs.operational;
    const inboundEvents = await deleted(tx, "DELETE FROM inbound_events WHERE state IN ('done', 'failed') AND received_at < $1", [opsCutoff]);
    const transactions = await deleted(tx, "DELETE FROM appservice_transactions WHERE received_at < $1", [opsCutoff]);
    let workItems = await deleted(tx, "DELETE FROM room_sync WHERE state = 'done' AND requested_at < $1", [opsCutoff]);

    // Each module's rules, in list order, switched on or not: its tables exist either way.
    const fromModules: Record<string, number> = {};
    for (const rule of rules.filter((rule) => rule.when !== "after")) fromModules[rule.count] = (fromModules[rule.count] ?? 0) + (await rule.run(tx, cutoffs, config));
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
    return { ...fromModules, mail, inboundEvents, transactions, workItems, auditRows, openIdTokens };
  });
  if (!counts) {
    log.info("another Kuvert process is running retention");
    return null;
  }
  // What lies outside the database goes once the rows are deleted for good.
  for (const rule of rules.filter((rule) => rule.when === "after")) counts[rule.count] = (counts[rule.count] ?? 0) + (await rule.run(db, cutoffs, config));
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
