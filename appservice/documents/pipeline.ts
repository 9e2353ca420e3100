// Moves each document from arrival to its end: scanned first, always. Outbound: clean →
// uploaded once and posted once into the organisation's room, clerks notified; infected or
// unscannable → destroyed, rejected, staff alerted. Inbound (a file a clerk or staff member
// posted, or any event referencing media): every media it references scanned; all clean →
// marked as checked; one infected or unscannable → redacted, all its media quarantined, the
// room told.
// Each step checks what is already done, so a crash and a rerun repeat nothing.
import { createReadStream } from "node:fs";
import { audit, auditMany } from "../audit/audit.ts";
import { ErrCode } from "../errors.ts";
import type { KuvertConfig } from "../config/schema.ts";
import type { Database, Queryable } from "../db/database.ts";
import { mailLanguage, notice } from "../i18n.ts";
import { logger } from "../log.ts";
import { enqueueNotification, enqueueNotifications, type Notification } from "../mail/outbox.ts";
import { HomeserverError, type Homeserver } from "../matrix/homeserver.ts";
import { createMedia, quarantineMedia, uploadMedia, uploadOnce } from "../matrix/media.ts";
import type { MediaReference } from "../matrix/references.ts";
import { fileKinds } from "./inbound.ts";
import { scanInboundMedia, type InboundVerdict } from "./inbound-scan.ts";
import { findOrganisation, type StoredOrganisation } from "../organisations/store.ts";
import type { Prescans } from "./prescan.ts";
import { ScannerUntrustedError, type DocumentScanner } from "../scanning/policy.ts";
import type { ScannerUnavailableError, ScanVerdict, Unscannable } from "../scanning/scanner.ts";
import type { StaffRoom } from "../staff/staffroom.ts";
import { AdaptiveLimit } from "../workers/limit.ts";
import { BatchWriter, DrainingWorker } from "../workers/batch.ts";
import { WorkQueue, type QueueRow, type Worker } from "../workers/queue.ts";
import { documentsInFlightLimit } from "../metrics.ts";
import { refusalOf, scannerWaitSeconds, scanTimed, verdictLabel } from "../scanning/outcome.ts";
import { documentTexts } from "./texts.ts";
import { ciphertextSha256, encryptAttachmentStream, fileObject, freshSecrets, splitMediaKey } from "../e2ee/attachments.ts";
import type { Staging } from "../files/staging.ts";
import { scannedEntry } from "./model.ts";
import * as store from "./store.ts";
import { unlinkRejected } from "./versions.ts";
import { documentMail, inboundFileMail } from "./mail.ts";

const log = logger("documents");

interface DocumentWorkRow extends QueueRow {
  document_id: string;
}

/** A delivered document whose events are in the room, waiting to be recorded. */
interface Delivery {
  row: DocumentWorkRow;
  doc: store.DocumentRow;
  org: StoredOrganisation & { roomId: string };
  eventId: string;
  announcementEventId: string;
  replaced: store.DocumentRow | null;
  /** Set once its batch recorded it (false: another worker had taken the document over). */
  recorded: boolean;
}

/** Most deliveries recorded in one transaction. */
const MAX_BATCH = 64;
/** How long a batch of deliveries waits for others while documents are in hand. */
const GATHER_MS = 50;

/** The room is not there yet (being made) or not usable: try again later. */
class RoomNotReady extends Error {}

export class DocumentPipeline {
  readonly #db: Database;
  readonly #hs: Homeserver;
  readonly #scanner: DocumentScanner;
  readonly #staging: Staging;
  readonly #staffRoom: StaffRoom;
  readonly #config: KuvertConfig;
  readonly #prescans: Prescans | undefined;
  readonly queue: WorkQueue<DocumentWorkRow>;
  /** How many documents go to the homeserver at once, adapted to its answers. */
  readonly inFlight: AdaptiveLimit;
  /** The worker that handles this process's documents (how many it has in hand paces the limit). */
  #worker: Worker<DocumentWorkRow> | undefined;
  /** Records delivered documents, several per transaction. */
  readonly #recorder: BatchWriter<Delivery>;
  /** Told each document finished (see worker()). */
  #onFinished: (() => void) | undefined;

  /** With `prescans`, a verdict reached while the document arrived is taken instead of scanning again. */
  constructor(db: Database, hs: Homeserver, scanner: DocumentScanner, staging: Staging, staffRoom: StaffRoom, config: KuvertConfig, prescans?: Prescans) {
    this.#db = db;
    this.#hs = hs;
    this.#scanner = scanner;
    this.#staging = staging;
    this.#staffRoom = staffRoom;
    this.#config = config;
    this.#prescans = prescans;
    this.queue = new WorkQueue<DocumentWorkRow>(db, { table: "document_work", key: "document_id", order: "q.run_after", maxAttempts: 20 }, config.workers.leaseSeconds);
    const { concurrency, maxDocumentsInFlight } = config.workers;
    this.inFlight = new AdaptiveLimit({ floor: Math.min(concurrency, maxDocumentsInFlight), max: maxDocumentsInFlight, onChange: (n) => documentsInFlightLimit.set(n) });
    this.#recorder = new BatchWriter<Delivery>({
      db,
      maxBatch: MAX_BATCH,
      // While other documents are in hand, a batch waits a moment for them: at full load a
      // transaction then records several deliveries instead of one (alone, one goes at once).
      gather: { ms: GATHER_MS, while: () => (this.#worker?.handling ?? 0) > this.#recorder.waiting },
      write: (tx, batch) => this.#writeDeliveries(tx, batch),
      written: (batch) => this.#delivered(batch),
      failed: (d, err) => log.warn({ document: d.doc.id, err }, "recording a delivery failed; the document is taken up again (same media, same events) when its lease runs out"),
    });
  }

  /**
   * The worker of this process's documents; `onFinished` is told each document it finished
   * (rejected, held, or delivered: a delivery once its record is committed).
   */
  worker(onFinished?: () => void): Worker<DocumentWorkRow> {
    this.#onFinished = onFinished;
    this.#worker = new DrainingWorker<DocumentWorkRow>(this.#recorder, {
      name: "documents",
      queue: this.queue,
      concurrency: this.inFlight,
      pollMilliseconds: this.#config.workers.pollMilliseconds,
      handle: async (row) => {
        if ((await this.#handle(row)) === "finished") this.#onFinished?.();
      },
      // Refused in a way no retry cures (e.g. the homeserver will not take the file), or out of attempts:
      // the document is failed with the reason (API, console), audited, and staff are alerted.
      onGaveUp: async (row, err) => {
        log.error({ document: row.document_id, err }, "a document could not be processed and was set aside");
        const t = documentTexts(this.#config.organisations.language);
        const why = err instanceof Error ? err.message : String(err);
        const alert = { key: `stuck:${row.document_id}`, body: t.stuck(row.document_id, why) };
        await this.#db.transaction(async (tx) => {
          const doc = await store.findDocument(tx, row.document_id);
          if (!doc || ["delivered", "rejected", "checked", "removed", "failed"].includes(doc.state)) return;
          await store.setState(tx, doc.id, "failed", { reason: t.failedReason(why), finished: true });
          await audit(tx, { actor: "kuvert", action: "document.failed", organisationId: doc.organisation_id, object: doc.id, outcome: "failed", details: { reason: why, attempts: row.attempts } });
          await this.#staffRoom.alertByMail(tx, { key: alert.key, mail: alert.body }, doc.organisation_id);
        });
        await this.#staffRoom.post(alert).catch(() => undefined);
      },
    });
    return this.#worker;
  }

  /** "recording": a delivery handed to the batch writer, finished when its batch is committed. */
  async #handle(row: DocumentWorkRow): Promise<"finished" | "recording"> {
    const doc = await store.findDocument(this.#db, row.document_id);
    if (!doc) await this.queue.complete(row);
    else if (doc.direction === "outbound") return this.#outbound(row, doc);
    else await this.#inbound(row, doc);
    return "finished";
  }

  /**
   * Scans with `run` (given clamd's verdict on the whole file reached while it arrived, if any);
   * answers the verdict, or null when the scanner is down or not trusted (the document is then held).
   */
  async #scan(row: DocumentWorkRow, doc: store.DocumentRow, run: (early: ScanVerdict | undefined) => Promise<ScanVerdict>): Promise<(ScanVerdict & { whileReceiving?: boolean }) | "too-large" | null> {
    await store.setState(this.#db, doc.id, "scanning");
    const early = await this.#prescans?.take(doc.id);
    const outcome = await scanTimed(() => run(early), verdictLabel);
    if (outcome.kind === "too-large") return "too-large";
    if (outcome.kind === "unavailable") {
      await this.#hold(row, doc, outcome.error);
      return null;
    }
    return early ? { ...outcome.result, whileReceiving: true } : outcome.result;
  }

  async #hold(row: DocumentWorkRow, doc: store.DocumentRow, err: ScannerUnavailableError): Promise<void> {
    const t = documentTexts(this.#config.organisations.language);
    await store.setState(this.#db, doc.id, "held", { reason: err instanceof ScannerUntrustedError ? t.heldUntrusted : t.held });
    // Held documents wait as long as the scanner is away; waiting is not a failed attempt.
    await this.queue.postpone(row, scannerWaitSeconds(row.attempts), err.message);
    log.warn({ document: doc.id, err }, "scanner unavailable; document held");
  }

  async #room(organisationId: string): Promise<StoredOrganisation & { roomId: string }> {
    const org = await findOrganisation(this.#db, organisationId);
    if (!org?.roomId || org.roomState !== "ready") throw new RoomNotReady(`the room of ${organisationId} is not ready (${org?.roomState ?? "no organisation"})`);
    return org as StoredOrganisation & { roomId: string };
  }

  async #outbound(row: DocumentWorkRow, doc: store.DocumentRow): Promise<"finished" | "recording"> {
    const t = documentTexts(this.#config.organisations.language);
    if (doc.state === "rejected") {
      await this.#finishRejection(row, doc);
      return "finished";
    }
    if (!doc.scanned_at) {
      const verdict = await this.#scan(row, doc, (early) => this.#staging.local(doc.id, (path) => this.#scanner.scanFile(path, Number(doc.size), early)));
      if (verdict === null) return "finished";
      if (verdict !== "too-large" && !verdict.clean && verdict.unscannable && this.#config.scanning.archives.unscannable === "hold") {
        await this.#holdForStaff(row, doc, { ...verdict, clean: false, unscannable: verdict.unscannable });
        return "finished";
      }
      if (verdict === "too-large" || !verdict.clean) {
        const refusal = this.#refusal(verdict);
        const signature = verdict === "too-large" ? null : verdict.signature;
        const reason = refusal.sentence;
        await this.#staging.destroy(doc.id);
        await this.#db.transaction(async (tx) => {
          await store.setState(tx, doc.id, "rejected", { reason, signature, errcode: refusal.errcode, scanned: true, finished: true });
          await unlinkRejected(tx, doc);
          await audit(tx, {
            actor: "kuvert",
            action: "document.rejected",
            organisationId: doc.organisation_id,
            object: doc.id,
            outcome: "refused",
            details: { reason: refusal.audit, errcode: refusal.errcode, signature, ...refusal.details, filename: doc.filename, ...(doc.supersedes ? { supersedes: doc.supersedes } : {}) },
          });
          await this.#staffRoom.alertByMail(tx, { key: `rejected:${doc.id}`, mail: t.rejectedMail(doc.id, doc.organisation_id, reason) }, doc.organisation_id);
        });
        await this.#finishRejection(row, { ...doc, reason, state: "rejected" });
        return "finished";
      }
      await this.#db.transaction(async (tx) => {
        await store.setState(tx, doc.id, "scanning", { scanned: true });
        await audit(tx, scannedEntry(doc.organisation_id, doc.id, verdict.durationMs, verdict.whileReceiving ?? false));
      });
    }
    const org = await this.#room(doc.organisation_id);
    const info = { mimetype: doc.mimetype ?? "application/octet-stream", size: Number(doc.size) };
    // Into an end-to-end-encrypted room the file goes up encrypted (CS API §"Sending encrypted
    // attachments"), with a key and IV recorded before the first byte: a retried upload makes the
    // same ciphertext. A file uploaded in the clear before the room was encrypted stays as it is.
    let secrets = doc.media_key ? splitMediaKey(Buffer.from(doc.media_key)) : null;
    if (!secrets && !doc.mxc_uri && (await this.#hs.isEncrypted(org.roomId))) {
      secrets = freshSecrets();
      await store.setMediaKey(this.#db, doc.id, Buffer.concat([secrets.key, secrets.iv]));
    }
    let sha256 = doc.media_sha256;
    const put = async (path: string, reserved: string | null): Promise<string> => {
      if (!secrets) return uploadMedia(this.#hs, { path }, { filename: doc.filename, ...info }, reserved);
      const encrypted = encryptAttachmentStream(createReadStream(path), secrets);
      // The homeserver sees neither the name nor the type of an encrypted file.
      const uploaded = await uploadMedia(this.#hs, encrypted.ciphertext, { filename: null, mimetype: "application/octet-stream", size: info.size }, reserved);
      sha256 = encrypted.file().hashes.sha256;
      await store.setMediaHash(this.#db, doc.id, sha256);
      return uploaded;
    };
    const mxc = await uploadOnce(
      { mxc: doc.mxc_uri, uploaded: doc.media_uploaded },
      {
        reserve: () => createMedia(this.#hs),
        record: (uri, uploaded) => store.setMedia(this.#db, doc.id, uri, uploaded),
        put: (reserved) => this.#paced(() => this.#staging.local(doc.id, (path) => put(path, reserved)), false),
      },
    );
    // Uploaded by an attempt that ended before it recorded the hash: the same key makes the same ciphertext again.
    if (secrets && !sha256) {
      const key = secrets;
      sha256 = await this.#staging.local(doc.id, (path) => ciphertextSha256(createReadStream(path), key));
      await store.setMediaHash(this.#db, doc.id, sha256);
    }
    // Each event with a transaction id of its own derived from the document: the short text, then
    // the file (and for a new version, the edit of the earlier announcement), so a rerun repeats none.
    const replaced = doc.supersedes ? await store.findDocument(this.#db, doc.supersedes) : null;
    const text = replaced?.event_id ? { ...notice(t.versionAnnouncement(doc, replaced)), "m.relates_to": { "m.in_reply_to": { event_id: replaced.event_id } } } : notice(t.announcement(doc));
    const announcementEventId = await this.#paced(() => this.#hs.send(org.roomId, "m.room.message", text, `document:${doc.id}:text`), true);
    const media = secrets && sha256 ? { file: { url: mxc, ...fileObject(secrets.key, secrets.iv, Buffer.from(sha256, "base64")) } } : { url: mxc };
    const file = { msgtype: "m.file", body: doc.filename, filename: doc.filename, ...media, info };
    const eventId = await this.#paced(() => this.#hs.send(org.roomId, "m.room.message", file, `document:${doc.id}:file`), true);
    if (replaced) await this.#markReplaced(org.roomId, replaced, doc, eventId);
    // The delivery, its audit rows, the clerks' e-mails and the end of the work: committed
    // together, with other documents' deliveries (see #writeDeliveries).
    await this.#recorder.add({ row, doc, org, eventId, announcementEventId, replaced, recorded: false });
    return "recording";
  }

  /** Records delivered documents, still leased by this worker, in one transaction. */
  async #writeDeliveries(tx: Queryable, batch: Delivery[]): Promise<void> {
    for (const d of batch) d.recorded = false;
    const held = await this.queue.completeMany(
      batch.map((d) => d.row),
      tx,
    );
    const done = batch.filter((d) => held.has(d.doc.id));
    await store.setDelivered(
      tx,
      done.map((d) => ({ id: d.doc.id, eventId: d.eventId, announcementEventId: d.announcementEventId })),
    );
    await auditMany(
      tx,
      done.flatMap(({ doc, org, eventId, replaced }) => [
        { actor: "kuvert", action: "document.delivered", organisationId: doc.organisation_id, object: doc.id, outcome: "ok" as const, details: { roomId: org.roomId, eventId, ...(replaced ? { supersedes: replaced.id, version: doc.version } : {}) } },
        ...(replaced ? [{ actor: "kuvert", action: "document.superseded", organisationId: doc.organisation_id, object: replaced.id, outcome: "ok" as const, details: { supersededBy: doc.id, version: replaced.version, newVersion: doc.version } }] : []),
      ]),
    );
    const t = documentTexts(mailLanguage(this.#config));
    await enqueueNotifications(
      tx,
      done.flatMap(({ doc, org, replaced }) => {
        const title = replaced ? t.newVersionTitle(doc.kind, doc.version) : (doc.kind ?? t.untitled);
        return this.#clerkMails(org, doc.id, { title, ...(doc.reference ? { reference: doc.reference } : {}) });
      }),
    );
    for (const d of done) d.recorded = true;
  }

  /**
   * After a batch of deliveries is committed: each is finished (the intake's pacer may let another
   * upload in), and their staged files go (a crash before this leaves them to retention's orphan sweep).
   */
  async #delivered(batch: Delivery[]): Promise<void> {
    for (const d of batch) {
      this.#onFinished?.();
      if (!d.recorded) {
        log.info({ document: d.doc.id }, "a delivered document was taken over by another worker before it was recorded here; that worker records it");
        continue;
      }
      await this.#staging.destroy(d.doc.id).catch((err: unknown) => log.warn({ document: d.doc.id, err }, "removing a delivered document's staged file failed; retention removes it"));
      log.info({ document: d.doc.id, organisation: d.doc.organisation_id }, "document delivered");
    }
  }

  /**
   * A request toward the homeserver whose answer paces the documents in flight: a 429 halves
   * them; with `timed`, its latency counts (room events only, all of about one size).
   */
  async #paced<T>(request: () => Promise<T>, timed: boolean): Promise<T> {
    const started = performance.now();
    try {
      const answer = await request();
      if (timed) this.inFlight.observe(performance.now() - started, this.#worker?.handling ?? 1);
      return answer;
    } catch (err) {
      if (err instanceof HomeserverError && err.status === 429) this.inFlight.throttled();
      throw err;
    }
  }

  /** Why a verdict refuses a document: a code, a sentence in the rooms' language, and what the audit log keeps. */
  #refusal(verdict: ScanVerdict | "too-large"): { errcode: ErrCode; sentence: string; audit: string; details: Record<string, string> } {
    const t = documentTexts(this.#config.organisations.language);
    const refusal = refusalOf(verdict);
    switch (refusal.reason) {
      case "too-large-to-scan":
        return { errcode: ErrCode.TooLarge, sentence: t.tooLarge(this.#config.scanning.maxStreamBytes), audit: refusal.reason, details: {} };
      case "unscannable":
        return { errcode: ErrCode.Unscannable, sentence: t.unscannable(refusal.unscannable.reason), audit: refusal.reason, details: { why: refusal.unscannable.reason, detail: refusal.unscannable.message } };
      case "infected":
        return { errcode: ErrCode.Infected, sentence: t.infected(refusal.signature), audit: refusal.reason, details: refusal.member ? { member: refusal.member } : {} };
    }
  }

  /** Why an inbound event's media is removed, as #refusal says it for outbound documents. */
  #inboundRefusal(verdict: Exclude<InboundVerdict, { kind: "clean" }>): { errcode: ErrCode; sentence: string; audit: string; details: Record<string, string> } {
    const t = documentTexts(this.#config.organisations.language);
    if (verdict.kind === "infected") return { errcode: ErrCode.Infected, sentence: t.infected(verdict.signature), audit: "infected", details: verdict.member ? { member: verdict.member } : {} };
    if (verdict.why === "too-large-to-scan") return { errcode: ErrCode.TooLarge, sentence: t.tooLarge(this.#config.scanning.maxStreamBytes), audit: verdict.why, details: { detail: verdict.detail } };
    const sentence = verdict.archive ? t.unscannable(verdict.archive.reason) : t.unscannableMedia(verdict.why as Exclude<typeof verdict.why, "archive">);
    return { errcode: ErrCode.Unscannable, sentence, audit: verdict.archive ? "unscannable" : verdict.why, details: { why: verdict.archive?.reason ?? verdict.why, detail: verdict.detail } };
  }

  /** scanning.archives.unscannable "hold": the document is never delivered, stays in staging, and waits for staff. */
  async #holdForStaff(row: DocumentWorkRow, doc: store.DocumentRow, verdict: ScanVerdict & { clean: false; unscannable: Unscannable }): Promise<void> {
    const t = documentTexts(this.#config.organisations.language);
    const reason = t.heldForStaff(verdict.unscannable.reason);
    await this.#db.transaction(async (tx) => {
      await store.setState(tx, doc.id, "held", { reason, signature: verdict.signature, errcode: ErrCode.Unscannable, scanned: true });
      await audit(tx, {
        actor: "kuvert",
        action: "document.held",
        organisationId: doc.organisation_id,
        object: doc.id,
        outcome: "refused",
        details: { reason: "unscannable", errcode: ErrCode.Unscannable, why: verdict.unscannable.reason, detail: verdict.unscannable.message },
      });
      await this.#staffRoom.alertByMail(tx, { key: `held:${doc.id}`, mail: t.heldAlert(doc.id, doc.organisation_id, reason) }, doc.organisation_id);
    });
    await this.#staffRoom.post({ key: `held:${doc.id}`, body: t.heldAlert(doc.id, doc.organisation_id, reason) });
    await this.queue.complete(row);
  }

  /**
   * Edits the earlier version's announcement (`m.replace`) to say it was replaced and by which.
   * Announcements from before versions were recorded have no event to edit: the reply says it.
   */
  async #markReplaced(roomId: string, replaced: store.DocumentRow, doc: store.DocumentRow, newEventId: string): Promise<void> {
    if (!replaced.announcement_event_id) {
      log.info({ document: doc.id, replaced: replaced.id }, "the replaced version's announcement is not known; it is not edited");
      return;
    }
    const t = documentTexts(this.#config.organisations.language);
    const link = `https://matrix.to/#/${encodeURIComponent(roomId)}/${encodeURIComponent(newEventId)}`;
    const edited = notice(t.replacedAnnouncement(replaced, doc, link));
    // CS API §"Event replacements": the fallback body starts with "*", m.new_content is what clients show.
    const content = {
      ...edited,
      body: `* ${String(edited.body)}`,
      ...(edited.formatted_body ? { formatted_body: `* ${String(edited.formatted_body)}` } : {}),
      "m.new_content": edited,
      "m.relates_to": { rel_type: "m.replace", event_id: replaced.announcement_event_id },
    };
    await this.#hs.send(roomId, "m.room.message", content, `document:${doc.id}:replaces`);
  }

  /** After a rejection is recorded: the staff room hears of it (once), the work is done. */
  async #finishRejection(row: DocumentWorkRow, doc: store.DocumentRow): Promise<void> {
    const t = documentTexts(this.#config.organisations.language);
    await this.#staffRoom.post({ key: `rejected:${doc.id}`, body: t.rejectedAlert(doc.filename, doc.organisation_id, doc.reason ?? "") });
    await this.queue.complete(row);
  }

  /** Scans every media the inbound event references; null when the scanner is down (the document is then held). */
  async #scanInbound(row: DocumentWorkRow, doc: store.DocumentRow): Promise<InboundVerdict | null> {
    await store.setState(this.#db, doc.id, "scanning");
    const outcome = await scanTimed(
      () => scanInboundMedia(this.#hs, this.#scanner, store.inboundMedia(doc)),
      (v) => (v.kind === "clean" ? "clean" : v.kind === "infected" ? "infected" : v.why === "too-large-to-scan" ? "too_large" : "unscannable"),
    );
    if (outcome.kind === "scanned") return outcome.result;
    // scanInboundMedia answers a file too large to scan with a verdict of its own.
    if (outcome.kind === "too-large") throw new Error("scanInboundMedia let a file too large to scan through");
    await this.#hold(row, doc, outcome.error);
    return null;
  }

  async #inbound(row: DocumentWorkRow, doc: store.DocumentRow): Promise<void> {
    const t = documentTexts(this.#config.organisations.language);
    const org = await this.#room(doc.organisation_id);
    const media = store.inboundMedia(doc);
    const shown = fileKinds.has(doc.kind ?? "m.file") ? doc.filename : t.mediaInMessage;
    if (doc.state === "received" || doc.state === "scanning" || doc.state === "held") {
      const verdict = await this.#scanInbound(row, doc);
      if (verdict === null) return;
      if (verdict.kind === "clean") {
        await this.#db.transaction(async (tx) => {
          await store.setState(tx, doc.id, "checked", { scanned: true, finished: true });
          await audit(tx, { actor: "kuvert", action: "inbound.checked", organisationId: org.id, object: doc.id, outcome: "ok", details: { eventId: doc.room_event_id, sender: doc.submitted_by, media: verdict.scanned } });
          await this.#notifyInbound(tx, org, doc);
        });
        doc = { ...doc, state: "checked" };
      } else {
        const refusal = this.#inboundRefusal(verdict);
        const reason = refusal.sentence;
        const signature = verdict.kind === "infected" ? verdict.signature : null;
        await this.#db.transaction(async (tx) => {
          await store.setState(tx, doc.id, "removed", { reason, signature, errcode: refusal.errcode, scanned: true, finished: true });
          await audit(tx, {
            actor: "kuvert",
            action: "inbound.removed",
            organisationId: org.id,
            object: doc.id,
            outcome: "refused",
            details: {
              eventId: doc.room_event_id,
              sender: doc.submitted_by,
              reason: refusal.audit,
              errcode: refusal.errcode,
              signature,
              // Which reference decided, e.g. "info.thumbnail_url" or "m.new_content.url".
              media: verdict.path,
              ...refusal.details,
            },
          });
          await this.#staffRoom.alertByMail(tx, { key: `removed:${doc.id}`, mail: t.removedMail(doc.id, org.name, reason) }, org.id);
        });
        doc = { ...doc, state: "removed", reason };
      }
    }
    if (doc.state === "checked") {
      // Visible in Element as a reaction on the file (CS API §"m.reaction" / annotations).
      await this.#hs.send(org.roomId, "m.reaction", { "m.relates_to": { rel_type: "m.annotation", event_id: doc.room_event_id, key: t.checkedReaction } }, `document:${doc.id}:checked`);
    } else if (doc.state === "removed") {
      await this.#hs.request("PUT", `${this.#hs.room(org.roomId)}/redact/${encodeURIComponent(doc.room_event_id!)}/${encodeURIComponent(`kuvert.redact.${doc.id}`)}`, undefined, {
        reason: doc.reason ?? t.removedReason,
      });
      // Every media the event referenced, not only the one that decided: none of it stays downloadable.
      await this.#quarantine(doc, media);
      await this.#hs.send(org.roomId, "m.room.message", notice({ body: t.removedInRoom(shown, doc.reason ?? "") }), `document:${doc.id}:removed`);
      await this.#staffRoom.post({ key: `removed:${doc.id}`, body: t.removedAlert(shown, org.name, doc.reason ?? "") });
    }
    await store.forgetMediaKeys(this.#db, doc);
    await this.queue.complete(row);
  }

  async #quarantine(doc: store.DocumentRow, media: MediaReference[]): Promise<void> {
    const adminToken = this.#config.homeserver.adminToken;
    if (!adminToken) {
      log.warn({ document: doc.id }, "no homeserver admin token configured: the media was redacted but not quarantined");
      return;
    }
    for (const mxc of new Set(media.map((m) => m.mxc))) {
      if (!/^mxc:\/\/[^/]+\/[A-Za-z0-9_-]+$/.test(mxc)) continue;
      await quarantineMedia(this.#hs, adminToken, mxc).catch((err: unknown) => {
        if (err instanceof HomeserverError && (err.status === 404 || err.status === 400)) return;
        throw err;
      });
    }
  }

  /** A clean upload from a clerk goes to the staff mailbox; one from staff goes to the clerks, like a delivery. */
  async #notifyInbound(tx: Queryable, org: StoredOrganisation & { roomId: string }, doc: store.DocumentRow): Promise<void> {
    const isClerk = org.clerks.some((c) => c.matrixId === doc.submitted_by && c.status === "active");
    if (isClerk) {
      const mailbox = this.#config.mail.staffMailbox;
      if (!mailbox) return;
      await enqueueNotification(tx, {
        kind: inboundFileMail,
        to: mailbox,
        organisationId: org.id,
        organisationName: org.name,
        roomId: org.roomId,
        // The staff mailbox learns that a file came in and from which organisation; the room names it.
        items: [{ title: documentTexts(mailLanguage(this.#config)).untitled }],
        language: mailLanguage(this.#config),
        dedupeKey: `inbound:${doc.id}`,
      });
      return;
    }
    await enqueueNotifications(tx, this.#clerkMails(org, doc.id, { title: documentTexts(mailLanguage(this.#config)).untitled }));
  }

  /**
   * The e-mails telling every clerk with an address that something new is in the room. The item
   * names the kind and reference, never the file name: names of files can carry personal data.
   */
  #clerkMails(org: StoredOrganisation & { roomId: string }, documentId: string, item: { title: string; reference?: string }): Notification[] {
    return org.clerks
      .filter((clerk) => clerk.status === "active" && clerk.email)
      .map((clerk) => ({
        kind: documentMail,
        to: clerk.email!,
        organisationId: org.id,
        organisationName: org.name,
        roomId: org.roomId,
        items: [item],
        language: mailLanguage(this.#config),
        dedupeKey: `document:${documentId}:${clerk.email}`,
      }));
  }
}
