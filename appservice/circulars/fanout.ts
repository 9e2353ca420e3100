// Moves circulars from stored to sent. Two queues:
//
// circular_work — one row per circular: waits until its time, scans every attachment once
// (staged by Kuvert, or downloaded from the media repository when staff posted it in the staff
// room), uploads each clean one once, and only then opens the fan-out. An attachment that is
// not clean stops the whole circular before any room gets anything. While the fan-out runs,
// the same row comes back every circulars.progressIntervalSeconds to edit the one progress
// message in the staff room, and ends the circular when nothing is pending.
//
// circular_deliveries — one row per organisation (and per correction), claimed with FOR UPDATE
// SKIP LOCKED by up to circulars.concurrency workers per process. Every room send takes its
// transaction id from the delivery (circular, organisation, part), so a delivery repeated after
// a crash or a timeout is the same PUT and the room gets it once. 429 (with retry_after_ms) and
// 5xx are retried with a growing pause; other refusals fail the delivery with the reason.
// Deliveries that reached their room are recorded together (group commit): whatever finished
// while the previous batch was being written goes into the next transaction — state, audit
// row and clerks' e-mails of each, all or nothing. A crash before that commit repeats the
// sends, which the transaction ids make the same events.
import { Readable } from "node:stream";
import { audit, auditMany, type AuditEntry } from "../audit/audit.ts";
import type { KuvertConfig } from "../config/schema.ts";
import type { Database, Queryable } from "../db/database.ts";
import type { Staging } from "../files/staging.ts";
import { logger } from "../log.ts";
import { enqueueNotifications } from "../mail/outbox.ts";
import { HomeserverError, type Homeserver } from "../matrix/homeserver.ts";
import { createMedia, downloadMedia, uploadMedia, uploadOnce } from "../matrix/media.ts";
import { ciphertextSha256, decryptAttachment, encryptAttachmentStream, fileObject, freshSecrets, readEncryptedFile, splitMediaKey } from "../e2ee/attachments.ts";
import { refusalOf, scannerWaitSeconds, scanTimed, verdictLabel, type Refusal, type ScanOutcome } from "../scanning/outcome.ts";
import type { Scanner, ScanVerdict } from "../scanning/scanner.ts";
import type { StaffRoom } from "../staff/staffroom.ts";
import { BatchWriter, DrainingWorker } from "../workers/batch.ts";
import { Worker, WorkQueue, workerId, type QueueRow } from "../workers/queue.ts";
import { editContent, messageContent } from "./markdown.ts";
import { attachmentStagingId } from "./service.ts";
import * as store from "./store.ts";
import { circularTexts, progressMessage } from "./texts.ts";
import { mailLanguage, notice } from "../i18n.ts";
import { organisationRecipients, type OrganisationRecipients } from "../organisations/store.ts";
import { circularMail } from "./mail.ts";

const log = logger("circulars");

interface CircularWorkRow extends QueueRow {
  circular_id: string;
}

type DeliveryWorkRow = store.DeliveryRow & QueueRow;

/** The room is being made: the delivery waits for it. */
class RoomNotReady extends Error {}

/** An attachment posted in the staff room that the homeserver no longer gives out. */
class AttachmentUnavailable extends Error {}

/** A refusal that will not change by retrying: the delivery fails at once with this reason (the queue's shared rule). */
class DeliveryRefused extends Error {
  readonly permanent = true;
}

/** What a delivery needs of its organisation, in one query. */
type TargetOrganisation = OrganisationRecipients;

/** A delivery whose events are in the room, waiting to be recorded. */
interface Completion {
  row: DeliveryWorkRow;
  roomId: string;
  eventId: string;
  /** The original: its organisation (for the clerks' e-mails). Absent for corrections. */
  org?: TargetOrganisation;
}

/** Most deliveries recorded in one transaction. */
const MAX_BATCH = 64;

export class CircularFanout {
  readonly #db: Database;
  readonly #hs: Homeserver;
  readonly #scanner: Scanner;
  readonly #staging: Staging;
  readonly #staffRoom: StaffRoom;
  readonly #config: KuvertConfig;
  readonly circularQueue: WorkQueue<CircularWorkRow>;
  readonly deliveryQueue: WorkQueue<DeliveryWorkRow>;
  #deliveryWorker: Worker<DeliveryWorkRow> | undefined;
  #circularWorker: Worker<CircularWorkRow> | undefined;
  /** Records deliveries whose events are in the room, several per transaction. */
  readonly #recorder: BatchWriter<Completion>;
  /** Circular texts and attachments, read once per process (they do not change once sending). */
  readonly #cache = new Map<string, Promise<{ circular: store.CircularRow; attachments: store.AttachmentRow[]; revisions: store.RevisionRow[] }>>();

  constructor(db: Database, hs: Homeserver, scanner: Scanner, staging: Staging, staffRoom: StaffRoom, config: KuvertConfig) {
    this.#db = db;
    this.#hs = hs;
    this.#scanner = scanner;
    this.#staging = staging;
    this.#staffRoom = staffRoom;
    this.#config = config;
    this.circularQueue = new WorkQueue<CircularWorkRow>(db, { table: "circular_work", key: "circular_id", order: "q.run_after", maxAttempts: 30 }, config.workers.leaseSeconds);
    this.deliveryQueue = new WorkQueue<DeliveryWorkRow>(
      db,
      {
        table: "circular_deliveries",
        key: "id",
        // Only once the attachments are clean and uploaded; a correction only after the earlier text reached that room.
        claimable: `EXISTS (SELECT 1 FROM circulars c WHERE c.id = q.circular_id AND c.state IN ('sending', 'sent'))
          AND (q.revision = 0 OR NOT EXISTS (SELECT 1 FROM circular_deliveries p WHERE p.circular_id = q.circular_id AND p.organisation_id = q.organisation_id AND p.revision < q.revision AND p.state = 'pending'))`,
        order: "q.id",
        maxAttempts: config.circulars.maxAttempts,
      },
      config.workers.leaseSeconds,
    );
    this.#recorder = new BatchWriter<Completion>({
      db,
      maxBatch: MAX_BATCH,
      write: (tx, batch) => this.#writeBatch(tx, batch),
      failed: (c, err) => log.warn({ circular: c.row.circular_id, organisation: c.row.organisation_id, err }, "recording a delivery failed; it is sent again (same events) when its lease runs out"),
    });
  }

  workers(): [Worker<CircularWorkRow>, Worker<DeliveryWorkRow>] {
    this.#circularWorker = new Worker<CircularWorkRow>({
      name: "circulars",
      queue: this.circularQueue,
      concurrency: 2,
      pollMilliseconds: this.#config.workers.pollMilliseconds,
      handle: (row) => this.#handleCircular(row),
      // Out of attempts, or refused in a way no retry cures (e.g. the homeserver will not take an attachment):
      // a circular still being prepared is stopped with the reason, so staff see it in its status.
      onGaveUp: async (row, err) => {
        log.error({ circular: row.circular_id, err }, "a circular could not be processed");
        const t = circularTexts(this.#config.organisations.language);
        const why = err instanceof Error ? err.message : String(err);
        const alert = { key: `circular-stuck:${row.circular_id}`, body: t.notPrepared(row.circular_id, why) };
        const stopped = await this.#db.transaction(async (tx) => {
          if (!(await store.setState(tx, row.circular_id, "stopped", { from: ["scheduled", "scanning"], reason: t.notPreparedReason(why), finished: true }))) return false;
          await store.failPending(tx, row.circular_id, t.notPreparedReason(why));
          await audit(tx, { actor: "kuvert", action: "circular.stopped", object: row.circular_id, outcome: "failed", details: { reason: "not-prepared", error: why } });
          await this.#staffRoom.alertByMail(tx, { key: alert.key, mail: alert.body });
          return true;
        });
        if (stopped) await this.#removeStaged(row.circular_id);
        await this.#staffRoom.post(stopped ? alert : { key: alert.key, body: `${row.circular_id}: ${why}` }).catch(() => undefined);
      },
    });
    this.#deliveryWorker = new DrainingWorker<DeliveryWorkRow>(this.#recorder, {
      name: "circular-deliveries",
      queue: this.deliveryQueue,
      concurrency: this.#config.circulars.concurrency,
      pollMilliseconds: this.#config.workers.pollMilliseconds,
      handle: (row) => this.#deliver(row),
      // Refused (archived, room lost, 4xx from the homeserver) or out of attempts: the reason is kept for the progress message and the API.
      onGaveUp: async (row, err) => {
        const reason = err instanceof Error ? err.message : String(err);
        await this.#db.transaction(async (tx) => {
          await store.setDeliveryReason(tx, row.id, reason.slice(0, 500));
          await audit(tx, { actor: "kuvert", action: "circular.delivery-failed", organisationId: row.organisation_id, object: row.circular_id, outcome: "failed", details: { revision: row.revision, reason, attempts: row.attempts } });
        });
        log.warn({ circular: row.circular_id, organisation: row.organisation_id, reason }, "circular delivery failed");
      },
    });
    return [this.#circularWorker, this.#deliveryWorker];
  }

  wake(): void {
    this.#circularWorker?.wake();
    this.#deliveryWorker?.wake();
  }

  // ---- the circular: schedule, scan, upload, progress -------------------------------------

  async #handleCircular(row: CircularWorkRow): Promise<void> {
    let c = await store.findCircular(this.#db, row.circular_id);
    if (!c) return void (await this.circularQueue.complete(row));
    if (c.state === "scheduled") {
      await store.setState(this.#db, c.id, "scanning", { from: ["scheduled"], started: true });
      c = (await store.findCircular(this.#db, c.id))!;
    }
    switch (c.state) {
      case "scanning":
        return this.#prepare(row, c);
      case "sending":
      case "sent":
        return this.#watch(row, c);
      default:
        // cancelled or stopped: nothing staged stays behind, the progress message shows the end.
        await this.#removeStaged(c.id);
        if (c.progress_event_id) await this.#showProgress(c);
        await this.circularQueue.complete(row);
    }
  }

  /**
   * An attachment's bytes: from the staff room's file on the homeserver (decrypted, when it came from
   * an encrypted staff room; `intact()` then says, once the stream ended, whether the ciphertext
   * matched its hash), or from staging.
   */
  async #source(circularId: string, a: store.AttachmentRow): Promise<{ stream: NodeJS.ReadableStream; size: number; intact(): boolean }> {
    if (!a.source_mxc) return { stream: this.#staging.read(attachmentStagingId(circularId, a.position)), size: Number(a.size), intact: () => true };
    try {
      const m = await downloadMedia(this.#hs, a.source_mxc);
      if (!a.source_file) return { stream: m.stream, size: m.size ?? Number(a.size), intact: () => true };
      let secrets;
      try {
        secrets = readEncryptedFile(a.source_file);
      } catch (err) {
        m.stream.destroy();
        throw new AttachmentUnavailable(`the encrypted file cannot be decrypted: ${(err as Error).message}`);
      }
      const decrypted = decryptAttachment(m.stream, secrets);
      // AES-CTR keeps the length: the plaintext is as long as the ciphertext.
      return { stream: decrypted.plaintext, size: m.size ?? Number(a.size), intact: () => decrypted.integrity() === "intact" };
    } catch (err) {
      // A file from the staff room the homeserver no longer gives out (removed, quarantined): the circular cannot go with it.
      if (err instanceof HomeserverError && !err.transient) throw new AttachmentUnavailable(err.message);
      throw err;
    }
  }

  async #prepare(row: CircularWorkRow, c: store.CircularRow): Promise<void> {
    const t = circularTexts(this.#config.organisations.language);
    const atts = await store.attachments(this.#db, c.id);
    for (const a of atts) {
      if (a.verdict) continue;
      let outcome: ScanOutcome<ScanVerdict> | { kind: "gone"; why: string };
      try {
        const source = await this.#source(c.id, a);
        outcome = await scanTimed(() => this.#scanner.scan(source.stream, source.size), verdictLabel);
        // What was scanned must be the file the event named: an encrypted file whose ciphertext fails its hash is not.
        if (outcome.kind === "scanned" && outcome.result.clean && !source.intact()) throw new AttachmentUnavailable("the encrypted file does not match the hash in its event");
      } catch (err) {
        if (!(err instanceof AttachmentUnavailable)) throw err;
        outcome = { kind: "gone", why: err.message };
      }
      if (outcome.kind === "unavailable") {
        // Waits while the scanner is away; not a failed attempt. Nothing is sent unscanned.
        await this.circularQueue.postpone(row, scannerWaitSeconds(row.attempts), outcome.error.message);
        log.warn({ circular: c.id, err: outcome.error }, "scanner unavailable; circular waits");
        return;
      }
      const setVerdict = (verdict: "clean" | "infected" | "too-large", signature: string | null) => store.setVerdict(this.#db, c.id, a.position, verdict, signature);
      if (outcome.kind === "scanned" && outcome.result.clean) {
        await setVerdict("clean", null);
        continue;
      }
      // Not clean (what cannot be scanned whole counts as infected in the attachment's verdict), too large to scan, or gone from the homeserver.
      let refusal: Refusal | null = null;
      let why: string;
      if (outcome.kind === "gone") why = t.unavailable(outcome.why);
      else {
        refusal = refusalOf(outcome.kind === "too-large" ? "too-large" : outcome.result);
        await setVerdict(refusal.reason === "too-large-to-scan" ? "too-large" : "infected", refusal.signature);
        why = refusal.reason === "too-large-to-scan" ? t.tooLarge(this.#config.scanning.maxStreamBytes) : refusal.reason === "unscannable" ? t.unscannable(refusal.unscannable.reason) : t.infected(refusal.signature);
      }
      const signature = refusal?.signature ?? null;
      const alert = { key: `circular-stopped:${c.id}`, body: t.stopped(c.id, a.filename, why) };
      const stopped = await this.#db.transaction(async (tx) => {
        if (!(await store.setState(tx, c.id, "stopped", { from: ["scanning"], reason: t.stoppedReason(a.filename), finished: true }))) return false;
        await store.failPending(tx, c.id, t.stoppedReason(a.filename));
        await audit(tx, {
          actor: "kuvert",
          action: "circular.stopped",
          object: c.id,
          outcome: "refused",
          details: { attachment: a.filename, reason: refusal?.reason ?? "unavailable", signature, ...(refusal?.reason === "unscannable" ? { why: refusal.unscannable.reason } : {}) },
        });
        await this.#staffRoom.alertByMail(tx, { key: alert.key, mail: t.stoppedMail(c.id, a.position, why) });
        return true;
      });
      if (stopped) {
        log.warn({ circular: c.id, attachment: a.position, signature }, "circular stopped: an attachment is not clean");
        await this.#removeStaged(c.id);
        await this.#staffRoom.post(alert);
      }
      return void (await this.circularQueue.complete(row));
    }
    // Every attachment is clean: each goes to the media repository once; every room gets the same mxc.
    // A reserved id (async upload) is recorded before its PUT, so a crash repeats the same PUT; a
    // finished upload is recorded as such and never sent again (see documents/pipeline.ts).
    const setMedia = (position: number, mxc: string, uploaded: boolean) => store.setMedia(this.#db, c.id, position, mxc, uploaded);
    // End-to-end-encrypted rooms get an encrypted copy, the others the file as it is; each copy
    // only when some room needs it, so that the homeserver holds no clear copy of what goes only
    // to encrypted rooms.
    const rooms = await store.targetRooms(this.#db, c.id);
    const encrypted = await Promise.all(rooms.map((roomId) => this.#hs.isEncrypted(roomId)));
    const clearCopy = encrypted.some((e) => !e) || rooms.length === 0;
    if (encrypted.some((e) => e)) await this.#uploadEncrypted(c.id);
    for (const a of await store.attachments(this.#db, c.id)) {
      if (a.media_uploaded || !clearCopy) continue;
      if (a.source_mxc && !a.source_file) {
        await setMedia(a.position, a.source_mxc, true);
        continue;
      }
      await uploadOnce(
        { mxc: a.mxc_uri, uploaded: false },
        {
          reserve: () => createMedia(this.#hs),
          record: (mxc, uploaded) => setMedia(a.position, mxc, uploaded),
          put: async (reserved) => {
            const source = await this.#source(c.id, a);
            const mxc = await uploadMedia(this.#hs, Readable.from(source.stream), { filename: a.filename, mimetype: a.mimetype, size: Number(a.size) }, reserved);
            if (!source.intact()) throw new AttachmentUnavailable("the encrypted file does not match the hash in its event");
            return mxc;
          },
        },
      );
    }
    const opened = await this.#db.transaction(async (tx) => {
      if (!(await store.setState(tx, c.id, "sending", { from: ["scanning"] }))) return false;
      await audit(tx, { actor: "kuvert", action: "circular.sending", object: c.id, outcome: "ok", details: { attachments: (await store.attachments(tx, c.id)).length } });
      return true;
    });
    if (!opened) {
      // Cancelled while its attachments were checked: nothing was sent; clean up and end.
      await this.#removeStaged(c.id);
      return void (await this.circularQueue.complete(row));
    }
    await this.#removeStaged(c.id);
    log.info({ circular: c.id }, "circular scanned; fan-out open");
    this.#deliveryWorker?.wake();
    await this.#watch(row, { ...c, state: "sending" });
  }

  /**
   * Uploads each attachment's encrypted copy once (CS API §"Sending encrypted attachments"), its key
   * and IV recorded before the first byte: a retried upload makes the same ciphertext, and an
   * upload that got through before its hash was recorded gets the hash from the same key again.
   */
  async #uploadEncrypted(circularId: string): Promise<void> {
    for (const a of await store.attachments(this.#db, circularId)) {
      if (a.encrypted_uploaded && a.media_sha256) continue;
      let secrets = a.media_key ? splitMediaKey(Buffer.from(a.media_key)) : null;
      if (!secrets) {
        secrets = freshSecrets();
        await store.setAttachmentEncryption(this.#db, circularId, a.position, { key: Buffer.concat([secrets.key, secrets.iv]) });
      }
      const key = secrets;
      let sha256 = a.media_sha256;
      await uploadOnce(
        { mxc: a.encrypted_mxc, uploaded: a.encrypted_uploaded },
        {
          reserve: () => createMedia(this.#hs),
          record: (mxc, uploaded) => store.setEncryptedMedia(this.#db, circularId, a.position, mxc, uploaded),
          put: async (reserved) => {
            const source = await this.#source(circularId, a);
            const ciphertext = encryptAttachmentStream(Readable.from(source.stream), key);
            const mxc = await uploadMedia(this.#hs, ciphertext.ciphertext, { filename: null, mimetype: "application/octet-stream", size: Number(a.size) }, reserved);
            if (!source.intact()) throw new AttachmentUnavailable("the encrypted file does not match the hash in its event");
            sha256 = ciphertext.file().hashes.sha256;
            await store.setAttachmentEncryption(this.#db, circularId, a.position, { sha256 });
            return mxc;
          },
        },
      );
      if (!sha256) await store.setAttachmentEncryption(this.#db, circularId, a.position, { sha256: await ciphertextSha256(Readable.from((await this.#source(circularId, a)).stream), key) });
    }
  }

  /** Edits the progress message; ends the circular when nothing is pending; comes back while something is. */
  async #watch(row: CircularWorkRow, c: store.CircularRow): Promise<void> {
    const sums = await store.summaries(this.#db, c.id);
    const pendingAnywhere = [...sums.values()].some((s) => s.pending > 0);
    if (c.state === "sending" && (sums.get(0)?.pending ?? 0) === 0) {
      const s = sums.get(0) ?? { pending: 0, delivered: 0, failed: 0 };
      await this.#db.transaction(async (tx) => {
        if (await store.setState(tx, c.id, "sent", { from: ["sending"], finished: true })) {
          await audit(tx, { actor: "kuvert", action: "circular.sent", object: c.id, outcome: "ok", details: { delivered: s.delivered, failed: s.failed } });
        }
      });
      c = { ...c, state: "sent" };
      log.info({ circular: c.id, ...s }, "circular sent");
    }
    await this.#showProgress(c);
    if (pendingAnywhere) {
      await this.circularQueue.postpone(row, this.#config.circulars.progressIntervalSeconds, "fan-out running");
    } else {
      await this.circularQueue.complete(row);
    }
  }

  /** The one progress message in the staff room, edited (m.replace) with each change of the counts. */
  async #showProgress(c: store.CircularRow): Promise<void> {
    const sums = await store.summaries(this.#db, c.id);
    const s0 = sums.get(0) ?? { pending: 0, delivered: 0, failed: 0 };
    const failures = await store.failedDeliveries(this.#db, c.id);
    const view = {
      id: c.id,
      state: c.state,
      total: s0.pending + s0.delivered + s0.failed,
      summary: s0,
      corrections: [...sums.entries()]
        .filter(([r]) => r > 0)
        .sort(([a], [b]) => a - b)
        .map(([revision, summary]) => ({ revision, summary })),
      failures: c.state === "cancelled" ? [] : failures.map((f) => ({ organisationId: f.organisation_id, reason: f.reason ?? f.last_error ?? "?" })),
    };
    const content = notice(progressMessage(this.#config.organisations.language, view));
    const roomId = this.#staffRoom.roomId ?? (await this.#staffRoom.ensure());
    if (!c.progress_event_id) {
      const eventId = await this.#hs.send(roomId, "m.room.message", content, `circular:${c.id}:progress`);
      await store.setProgressEvent(this.#db, c.id, eventId);
      return;
    }
    // Same counts, same transaction id: an edit is sent once per distinct state of the fan-out.
    const key = [c.state, ...[...sums.entries()].sort(([a], [b]) => a - b).map(([r, s]) => `${r}:${s.delivered}:${s.failed}:${s.pending}`)].join("|");
    await this.#hs.send(roomId, "m.room.message", editContent(c.progress_event_id, content), `circular:${c.id}:progress:${key}`);
  }

  async #removeStaged(circularId: string): Promise<void> {
    for (const a of await store.attachments(this.#db, circularId)) {
      if (!a.source_mxc) await this.#staging.destroy(attachmentStagingId(circularId, a.position));
    }
  }

  // ---- one organisation ---------------------------------------------------------------------

  #load(circularId: string) {
    let entry = this.#cache.get(circularId);
    if (!entry) {
      entry = (async () => ({
        circular: (await store.findCircular(this.#db, circularId))!,
        attachments: await store.attachments(this.#db, circularId),
        revisions: await store.revisions(this.#db, circularId),
      }))();
      this.#cache.set(circularId, entry);
      entry.catch(() => this.#cache.delete(circularId));
      if (this.#cache.size > 50) this.#cache.delete(this.#cache.keys().next().value!);
    }
    return entry;
  }

  /**
   * Errors go to the queue: refusals a retry cannot cure (DeliveryRefused, a 4xx from the
   * homeserver) fail the delivery at once; others are retried with backoff (429: at least
   * retry_after_ms) until circulars.maxAttempts.
   */
  async #deliver(row: DeliveryWorkRow): Promise<void> {
    if (row.revision === 0) await this.#deliverOriginal(row);
    else await this.#deliverCorrection(row);
  }

  #organisation(id: string): Promise<TargetOrganisation | null> {
    return organisationRecipients(this.#db, id);
  }

  async #deliverOriginal(row: DeliveryWorkRow): Promise<void> {
    const { circular: c, attachments } = await this.#load(row.circular_id);
    // The room comes from the database by organisation id, never from input.
    const org = await this.#organisation(row.organisation_id);
    if (!org) throw new DeliveryRefused("the organisation no longer exists");
    if (org.state === "archived") throw new DeliveryRefused("the organisation was archived");
    if (org.room_state === "lost") throw new DeliveryRefused(`Kuvert has lost the room: ${org.room_problem ?? "unknown"}`);
    if (!org.room_id || org.room_state !== "ready") throw new RoomNotReady(`the room of ${org.id} is not ready yet`);
    const base = `circular:${c.id}:${org.id}`;
    const eventId = await this.#hs.send(org.room_id, "m.room.message", messageContent({ body: c.body, html: c.html }), `${base}:text`);
    const encryptedRoom = attachments.length > 0 && (await this.#hs.isEncrypted(org.room_id));
    for (const a of attachments) {
      await this.#hs.send(org.room_id, "m.room.message", { msgtype: "m.file", body: a.filename, filename: a.filename, ...attachmentMedia(a, encryptedRoom), info: { mimetype: a.mimetype, size: Number(a.size) } }, `${base}:file:${a.position}`);
    }
    await this.#recorder.add({ row, roomId: org.room_id, eventId, org });
  }

  async #deliverCorrection(row: DeliveryWorkRow): Promise<void> {
    let loaded = await this.#load(row.circular_id);
    let revision = loaded.revisions.find((r) => r.revision === row.revision);
    if (!revision) {
      this.#cache.delete(row.circular_id);
      loaded = await this.#load(row.circular_id);
      revision = loaded.revisions.find((r) => r.revision === row.revision);
    }
    if (!revision) throw new Error(`revision ${row.revision} of ${row.circular_id} not found`);
    const o = await store.originalDelivery(this.#db, row.circular_id, row.organisation_id);
    if (!o) throw new DeliveryRefused("the original did not reach this room");
    const eventId = await this.#hs.send(o.room_id, "m.room.message", editContent(o.event_id, messageContent({ body: revision.body, html: revision.html })), `circular:${row.circular_id}:${row.organisation_id}:rev:${row.revision}`);
    await this.#recorder.add({ row, roomId: o.room_id, eventId });
  }

  // ---- recording deliveries, several per transaction -----------------------------------------

  async #writeBatch(tx: Queryable, batch: Completion[]): Promise<void> {
    const t = circularTexts(mailLanguage(this.#config));
    const recorded = await store.markDelivered(
      tx,
      batch.map((c) => ({ id: c.row.id, roomId: c.roomId, eventId: c.eventId })),
      workerId,
    );
    const done = batch.filter((c) => recorded.has(String(c.row.id)));
    await auditMany(
      tx,
      done.map((c): AuditEntry =>
        c.org
          ? { actor: "kuvert", action: "circular.delivered", organisationId: c.row.organisation_id, object: c.row.circular_id, outcome: "ok", details: { roomId: c.roomId, eventId: c.eventId } }
          : { actor: "kuvert", action: "circular.correction.delivered", organisationId: c.row.organisation_id, object: c.row.circular_id, outcome: "ok", details: { revision: c.row.revision, eventId: c.eventId } },
      ),
    );
    await enqueueNotifications(
      tx,
      done.flatMap((c) =>
        (c.org?.emails ?? []).map((email) => ({
          kind: circularMail,
          to: email,
          organisationId: c.org!.id,
          organisationName: c.org!.name,
          roomId: c.roomId,
          items: [{ title: t.mailTitle, reference: c.row.circular_id }],
          language: mailLanguage(this.#config),
          dedupeKey: `circular:${c.row.circular_id}:${email}`,
        })),
      ),
    );
  }
}

/**
 * Where an attachment's event points: the encrypted copy (`file`) in an encrypted room, the clear
 * one (`url`) elsewhere; a room whose copy was not made (its encryption changed after the upload)
 * gets the other.
 */
function attachmentMedia(a: store.AttachmentRow, encryptedRoom: boolean): { url: string } | { file: Record<string, unknown> } {
  const encrypted = a.encrypted_uploaded && a.encrypted_mxc && a.media_key && a.media_sha256 ? a : null;
  if (encrypted && (encryptedRoom || !a.mxc_uri)) {
    const { key, iv } = splitMediaKey(Buffer.from(encrypted.media_key!));
    return { file: { url: encrypted.encrypted_mxc!, ...fileObject(key, iv, Buffer.from(encrypted.media_sha256!, "base64")) } };
  }
  if (!a.mxc_uri) throw new Error(`attachment ${a.position} of ${a.circular_id} has no media`);
  return { url: a.mxc_uri };
}
