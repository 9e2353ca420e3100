// The transactional outbox for e-mail notifications. The decision to notify is a row,
// written in the same transaction as the change it is about (a document delivered, a file
// checked), so a crash can neither lose the e-mail nor send one for a change that was
// rolled back. A worker sends the rows through SMTP, several notifications to one address
// combined into one e-mail, and retries with backoff until mail.maxAttempts.
//
// Combining. Every row has a batch key: the kind group (documents and circulars for a
// room / files uploaded by an organisation / alerts), the organisation and the room. Of the
// pending rows with the same recipient and batch key, only the oldest (the head) can be
// claimed, and only once it is mail.combineWindowSeconds old; it then takes along every
// other pending row of its batch created within that window after it. So rows enqueued
// within the window of the first wait together and leave as ONE e-mail: a bulk batch of 20
// documents for one organisation is one e-mail per clerk. (The window is applied by the
// worker, which has the configuration; callers enqueue inside their own transactions
// without it.) The rows taken along are leased like the head, and marked `combined` in the
// same transaction that marks the head `sent`.
//
// At least once, never silently lost. The Message-ID is derived from the rows in the
// e-mail (head id and a digest of all ids), so sending the same batch again gives the same
// Message-ID, and mail systems and clients that drop duplicate Message-IDs drop it. The
// window that remains: if Kuvert dies (or loses the database) after the SMTP server accepted
// the message and before the transaction that marks the rows sent commits, the lease
// expires and the e-mail is sent once more, with the same Message-ID when the batch is the
// same. Kuvert never marks a row sent before the SMTP server accepted it.
//
// Giving up. After mail.maxAttempts attempts, or at once when the server refuses the
// recipient or message for good (5xx), onDead is called (Kuvert alerts staff there) and then
// the row is marked dead and `mail.dead` audited in one transaction. If onDead fails or
// Kuvert dies in between, the row is given up again later, without sending: staff hear of
// every dead e-mail at least once.
import { createHash } from "node:crypto";
import nodemailer, { type Transporter } from "nodemailer";
import { audit } from "../audit/audit.ts";
import type { KuvertConfig } from "../config/schema.ts";
import { columnsOf, type Database, type Queryable } from "../db/database.ts";
import { mailLanguage, type Language } from "../i18n.ts";
import { logger, pseudonym } from "../log.ts";
import { Worker, WorkQueue, workerId, type QueueRow } from "../workers/queue.ts";
import { notificationGroup, notificationTemplate, renderNotification, roomLink, type MailContent, type NotificationItem, type NotificationKind } from "./templates.ts";

const log = logger("mail");

/** An e-mail whose wording lives with its domain (accounts/mail.ts for "account"), made from the rows it combines. */
export type MailRenderer = (mail: { language: Language | null; organisationName: string | null; items: NotificationItem[] }) => MailContent;

export interface Notification {
  kind: NotificationKind;
  /** One address. Clerks get one notification each; alerts and uploads go to mail.staffMailbox. */
  to: string;
  organisationId?: string;
  /** Named in the subject and body. */
  organisationName?: string;
  /** The room the e-mail links into. */
  roomId?: string;
  items: NotificationItem[];
  /** Unset: mail.language (by default organisations.language) when the e-mail is sent. */
  language?: Language;
  /**
   * Makes a replayed enqueue a no-op: a second notification with the same key to the same
   * address is not written (derive it from the work item, e.g. `document:<id>`).
   */
  dedupeKey?: string;
}

export interface OutboxRow extends QueueRow {
  id: string;
  kind: NotificationKind;
  recipient: string;
  batch_key: string;
  organisation_id: string | null;
  organisation_name: string | null;
  room_id: string | null;
  items: NotificationItem[];
  language: Language | null;
  dedupe_key: string | null;
  created_at: Date;
  state: "pending" | "sent" | "combined" | "dead";
  run_after: Date;
  sent_at: Date | null;
  message_id: string | null;
  combined_into: string | null;
}

const addressPattern = /^[^@\s,;<>"]+@[^@\s,;<>"]+$/;
/** Most notifications one e-mail lists; more wait for the next e-mail. */
const MAX_ROWS_PER_MAIL = 200;

/** Writes the decision to notify, inside the caller's transaction (with the state change it belongs to). */
export function enqueueNotification(tx: Queryable, n: Notification): Promise<void> {
  return enqueueNotifications(tx, [n]);
}

/** Several notifications in one statement (e.g. every clerk of every document a batch records). */
export async function enqueueNotifications(tx: Queryable, list: Notification[]): Promise<void> {
  if (list.length === 0) return;
  const rows = list.map((n) => {
    const to = n.to.trim().toLowerCase();
    if (!addressPattern.test(to)) throw new Error("enqueueNotification: `to` is not one e-mail address");
    if (n.items.length === 0) throw new Error("enqueueNotification: a notification lists at least one item");
    const items = n.items.map((i) => ({ title: i.title, ...(i.reference ? { reference: i.reference } : {}), ...(i.kind ? { kind: i.kind } : {}), ...(i.link ? { link: i.link } : {}) }));
    const batchKey = `${notificationGroup(n.kind)}|${n.organisationId ?? ""}|${n.roomId ?? ""}`;
    return { ...n, to, items: JSON.stringify(items), batchKey };
  });
  const inserted = await tx.query(
    `INSERT INTO mail_outbox (kind, recipient, batch_key, organisation_id, organisation_name, room_id, items, language, dedupe_key)
     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::jsonb[], $8::text[], $9::text[])
     ON CONFLICT (dedupe_key, recipient) WHERE dedupe_key IS NOT NULL DO NOTHING`,
    columnsOf(rows, (r) => [r.kind, r.to, r.batchKey, r.organisationId ?? null, r.organisationName ?? null, r.roomId ?? null, r.items, r.language ?? null, r.dedupeKey ?? null]),
  );
  if (inserted.rowCount < rows.length) log.debug({ skipped: rows.length - inserted.rowCount }, "notifications already enqueued (same dedupe key)");
}

/** An SMTP answer that will not change by retrying: the server refused the recipient or the message for good. */
function permanentRefusal(err: unknown): boolean {
  const e = err as { permanent?: unknown; code?: unknown } | undefined;
  return e?.permanent === true && (e.code === "EENVELOPE" || e.code === "EMESSAGE");
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** The domain of the configured sender, for Message-IDs. */
function senderDomain(config: KuvertConfig): string {
  const match = /@([A-Za-z0-9.-]+)\s*>?\s*$/.exec(config.mail.from);
  return match?.[1] ?? config.homeserver.domain.replace(/:\d+$/, "");
}

/**
 * A guest link is a credential: once its e-mail went out (or was given up), the row keeps the
 * item's title but not its link, so the database holds no guest token after sending.
 */
async function forgetGuestLinks(tx: Queryable, ids: readonly (string | number)[]): Promise<void> {
  await tx.query(
    `UPDATE mail_outbox SET items = (SELECT jsonb_agg(i - 'link') FROM jsonb_array_elements(items) AS i)
      WHERE id = ANY ($1) AND kind = 'guest-link'`,
    [ids],
  );
}

export class MailOutbox {
  readonly queue: WorkQueue<OutboxRow>;
  /**
   * Called when an e-mail is given up (Kuvert alerts staff here), with the row as it is about
   * to be stored: state dead, last_error set. Called before the transaction that marks it
   * dead and audits `mail.dead`, outside any transaction: if it throws, or Kuvert dies before
   * that commit, the row is given up again on a later claim and onDead is called again, so
   * staff are told at least once. Make it idempotent on row.id. Rows that were in the same
   * e-mail are marked dead with it (combined_into = row.id). Do not alert about a dead
   * alert to the same mailbox.
   */
  onDead?: (row: OutboxRow) => Promise<void>;

  readonly #renderers = new Map<NotificationKind, MailRenderer>();
  readonly #db: Database;
  readonly #config: KuvertConfig;
  readonly #transport: Transporter;
  readonly #ownTransport: boolean;
  readonly #domain: string;

  constructor(db: Database, config: KuvertConfig, transport?: Transporter) {
    this.#db = db;
    this.#config = config;
    this.#domain = senderDomain(config);
    const smtp = config.mail.smtp;
    // Without `secure`, nodemailer upgrades with STARTTLS whenever the server offers it.
    this.#transport =
      transport ??
      nodemailer.createTransport({
        host: smtp.host,
        port: smtp.port,
        secure: smtp.secure,
        ...(smtp.user ? { auth: { user: smtp.user, pass: smtp.password ?? "" } } : {}),
        connectionTimeout: 30_000,
        greetingTimeout: 30_000,
        socketTimeout: 120_000,
      });
    this.#ownTransport = transport === undefined;
    const window = Math.max(0, Math.trunc(config.mail.combineWindowSeconds));
    this.queue = new WorkQueue<OutboxRow>(
      db,
      {
        table: "mail_outbox",
        key: "id",
        // Only the head of a batch, and only once its combine window has passed.
        claimable: `q.created_at <= now() - make_interval(secs => ${window}) ` + "AND NOT EXISTS (SELECT 1 FROM mail_outbox o WHERE o.recipient = q.recipient AND o.batch_key = q.batch_key AND o.state = 'pending' AND o.id < q.id)",
        order: "q.id",
        // The outbox gives up itself (onDead, then state dead and the audit entry in one
        // transaction), so the queue's fail() only ever schedules the next attempt.
        maxAttempts: Number.MAX_SAFE_INTEGER,
      },
      config.workers.leaseSeconds,
    );
  }

  worker(): Worker<OutboxRow> {
    return new Worker<OutboxRow>({
      name: "mail",
      queue: this.queue,
      concurrency: this.#config.workers.concurrency,
      pollMilliseconds: this.#config.workers.pollMilliseconds,
      handle: (row) => this.#handle(row),
    });
  }

  /** Closes the SMTP transport, if the outbox made it. */
  /** For readiness: the SMTP server answers and accepts Kuvert's login (nodemailer's verify). */
  async ping(): Promise<{ ok: boolean; detail: string }> {
    try {
      await this.#transport.verify();
      return { ok: true, detail: `${this.#config.mail.smtp.host}:${this.#config.mail.smtp.port}` };
    } catch (err) {
      return { ok: false, detail: (err as Error).message };
    }
  }

  close(): void {
    if (this.#ownTransport) this.#transport.close();
  }

  async #handle(head: OutboxRow): Promise<void> {
    const maxAttempts = this.#config.mail.maxAttempts;
    if (head.attempts > maxAttempts) {
      // The last attempt failed, but giving up did not finish (alerting staff failed, or a
      // crash): give up now, without sending again.
      await this.#giveUp(head, [], (head.last_error ?? "gave up after the last attempt").replace(/ \(alerting staff failed: .*\)$/s, ""));
      return;
    }
    const batch = await this.#takeAlong(head);
    const renewal = setInterval(
      () => {
        this.queue.renew(batch).catch((err: unknown) => log.error({ err }, "renewing the leases of combined notifications failed"));
      },
      (this.queue.leaseSeconds * 1000) / 3,
    );
    renewal.unref();
    const rows = [head, ...batch];
    const messageId = this.messageId(rows);
    try {
      await this.#send(head, rows, messageId);
    } catch (err) {
      clearInterval(renewal);
      if (permanentRefusal(err) || head.attempts >= maxAttempts) {
        await this.#giveUp(head, batch, errorText(err));
        return;
      }
      await this.#release(batch);
      // The queue records the error and schedules the next attempt with backoff.
      throw err;
    }
    clearInterval(renewal);
    await this.#markSent(head, batch, messageId);
  }

  /** Leases the other pending rows of the head's batch that were created within its window. */
  async #takeAlong(head: OutboxRow): Promise<OutboxRow[]> {
    const { rows } = await this.#db.query<OutboxRow>(
      `UPDATE mail_outbox SET leased_by = $1, lease_until = now() + make_interval(secs => $2)
        WHERE id IN (
          SELECT o.id FROM mail_outbox o, mail_outbox h
           WHERE h.id = $3 AND o.state = 'pending' AND o.recipient = h.recipient AND o.batch_key = h.batch_key AND o.id <> h.id
             AND o.created_at <= h.created_at + make_interval(secs => $4)
             AND (o.lease_until IS NULL OR o.lease_until < now())
           ORDER BY o.id LIMIT $5 FOR UPDATE OF o SKIP LOCKED)
        RETURNING *`,
      [workerId, this.queue.leaseSeconds, head.id, this.#config.mail.combineWindowSeconds, MAX_ROWS_PER_MAIL - 1],
    );
    return rows.sort((a, b) => (BigInt(a.id) < BigInt(b.id) ? -1 : 1));
  }

  async #release(batch: OutboxRow[]): Promise<void> {
    if (batch.length === 0) return;
    await this.#db.query("UPDATE mail_outbox SET lease_until = NULL, leased_by = NULL WHERE id = ANY ($1) AND leased_by = $2 AND state = 'pending'", [batch.map((r) => r.id), workerId]);
  }

  /** The Message-ID of the e-mail made of these rows: the same rows always give the same id. */
  messageId(rows: OutboxRow[]): string {
    const ids = rows.map((r) => r.id).sort((a, b) => (BigInt(a) < BigInt(b) ? -1 : 1));
    const digest = createHash("sha256").update(ids.join(",")).digest("hex").slice(0, 16);
    return `<kuvert.mail.${ids[0]}.${digest}@${this.#domain}>`;
  }

  /** E-mails of `kind` are worded by `render` (its domain's), not by the notification templates. */
  renderWith(kind: NotificationKind, render: MailRenderer): void {
    this.#renderers.set(kind, render);
  }

  async #send(head: OutboxRow, rows: OutboxRow[], messageId: string): Promise<void> {
    const mail = this.#config.mail;
    const kinds = new Set(rows.map((r) => r.kind));
    const own = this.#renderers.get(head.kind);
    const headTemplate = notificationTemplate(head.kind);
    // Several kinds of one group are worded as the group says; one kind by its own template.
    const template = kinds.size > 1 && headTemplate?.mixedAs ? notificationTemplate(headTemplate.mixedAs) : headTemplate;
    const items = rows.flatMap((r) => r.items);
    let content: MailContent;
    if (own) content = own({ language: head.language, organisationName: head.organisation_name, items });
    else if (template) {
      const link = head.room_id ? roomLink(mail.roomLinkBase, head.room_id) : null;
      content = renderNotification(template, { language: head.language ?? mailLanguage(this.#config), organisationName: head.organisation_name, roomLink: link, items });
    }
    // A kind neither a template nor a registered renderer words is an error (retried, then given up with an alert), never a wrongly worded e-mail.
    else throw new Error(`no renderer for e-mails of kind ${head.kind}`);
    await this.#transport.sendMail({
      from: mail.from,
      to: head.recipient,
      subject: content.subject,
      text: content.text,
      html: content.html,
      messageId,
      headers: { "Auto-Submitted": "auto-generated", "X-Auto-Response-Suppress": "All" },
    });
  }

  async #markSent(head: OutboxRow, batch: OutboxRow[], messageId: string): Promise<void> {
    const items = [head, ...batch].reduce((n, r) => n + r.items.length, 0);
    await this.#db.transaction(async (tx) => {
      const sent = await tx.query(
        `UPDATE mail_outbox SET state = 'sent', sent_at = now(), message_id = $2, lease_until = NULL, last_error = NULL
          WHERE id = $1 AND state = 'pending'`,
        [head.id, messageId],
      );
      if (batch.length > 0) {
        await tx.query(
          `UPDATE mail_outbox SET state = 'combined', combined_into = $1, sent_at = now(), message_id = $2, lease_until = NULL, last_error = NULL
            WHERE id = ANY ($3) AND state = 'pending'`,
          [head.id, messageId, batch.map((r) => r.id)],
        );
      }
      await forgetGuestLinks(tx, [head.id, ...batch.map((r) => r.id)]);
      if (sent.rowCount === 0) {
        // Another worker took the row over (our lease had expired) and finished first.
        log.warn({ mail: head.id }, "e-mail sent, but its row was already finished: it may have gone out twice");
        return;
      }
      await audit(tx, {
        actor: "kuvert",
        action: "mail.sent",
        organisationId: head.organisation_id,
        object: head.recipient,
        outcome: "ok",
        details: { mail: head.id, kind: head.kind, notifications: batch.length + 1, items, attempts: head.attempts, messageId },
      });
    });
    log.info({ mail: head.id, kind: head.kind, to: pseudonym(head.recipient), notifications: batch.length + 1, items, attempts: head.attempts }, "e-mail sent");
  }

  /** Tells staff (onDead), then marks the e-mail dead with the rows it combined and audits it, in one transaction. */
  async #giveUp(head: OutboxRow, batch: OutboxRow[], error: string): Promise<void> {
    const lastError = error.slice(0, 2000);
    try {
      await this.onDead?.({ ...head, state: "dead", last_error: lastError, lease_until: null });
    } catch (err) {
      await this.#release(batch);
      // Recorded by the queue's fail(); the row is given up again after the backoff.
      throw new Error(`${lastError} (alerting staff failed: ${errorText(err)})`, { cause: err });
    }
    const dead = await this.#db.transaction(async (tx) => {
      const { rows } = await tx.query<OutboxRow>("UPDATE mail_outbox SET state = 'dead', lease_until = NULL, last_error = $2 WHERE id = $1 AND state = 'pending' RETURNING *", [head.id, lastError]);
      const row = rows[0];
      if (!row) return undefined;
      await forgetGuestLinks(tx, [head.id, ...batch.map((r) => r.id)]);
      if (batch.length > 0) {
        await tx.query("UPDATE mail_outbox SET state = 'dead', combined_into = $1, lease_until = NULL, last_error = $2 WHERE id = ANY ($3) AND state = 'pending'", [head.id, lastError, batch.map((r) => r.id)]);
      }
      await audit(tx, {
        actor: "kuvert",
        action: "mail.dead",
        organisationId: row.organisation_id,
        object: row.recipient,
        outcome: "failed",
        details: { mail: row.id, kind: row.kind, notifications: batch.length + 1, attempts: row.attempts, error: lastError },
      });
      return row;
    });
    if (dead) log.error({ mail: dead.id, kind: dead.kind, to: pseudonym(dead.recipient), attempts: dead.attempts, notifications: batch.length + 1 }, "e-mail given up");
  }
}
