// Moves each document from arrival to its end: scanned first, always. Outbound: clean →
// uploaded once and posted once into the organisation's room, clerks notified; infected or
// unscannable → destroyed, rejected, staff alerted. Inbound (a file a clerk or staff member
// posted): clean → marked as checked; infected → redacted, quarantined, the room told.
// Each step checks what is already done, so a crash and a rerun repeat nothing.
import { audit } from "../audit/audit.ts";
import type { KuvertConfig } from "../config/schema.ts";
import type { Database, Queryable } from "../db/database.ts";
import { notice } from "../i18n.ts";
import { logger } from "../log.ts";
import { enqueueNotification } from "../mail/outbox.ts";
import { HomeserverError, type Homeserver } from "../matrix/homeserver.ts";
import { createMedia, downloadMedia, quarantineMedia, uploadMedia } from "../matrix/media.ts";
import { findOrganisation, type StoredOrganisation } from "../organisations/store.ts";
import type { Prescans } from "./prescan.ts";
import { ScannerUnavailableError, TooLargeToScanError, type Scanner, type ScanVerdict } from "../scanning/scanner.ts";
import type { StaffRoom } from "../staff/staffroom.ts";
import { Worker, WorkQueue, type QueueRow } from "../workers/queue.ts";
import { scanDuration } from "../metrics.ts";
import { documentTexts } from "./texts.ts";
import type { Staging } from "./staging.ts";
import * as store from "./store.ts";
import { unlinkRejected } from "./versions.ts";

const log = logger("documents");

interface DocumentWorkRow extends QueueRow {
  document_id: string;
}

/** The room is not there yet (being made) or not usable: try again later. */
class RoomNotReady extends Error {}

export class DocumentPipeline {
  readonly #db: Database;
  readonly #hs: Homeserver;
  readonly #scanner: Scanner;
  readonly #staging: Staging;
  readonly #staffRoom: StaffRoom;
  readonly #config: KuvertConfig;
  readonly #prescans: Prescans | undefined;
  readonly queue: WorkQueue<DocumentWorkRow>;

  /** With `prescans`, a verdict reached while the document arrived is taken instead of scanning again. */
  constructor(db: Database, hs: Homeserver, scanner: Scanner, staging: Staging, staffRoom: StaffRoom, config: KuvertConfig, prescans?: Prescans) {
    this.#db = db;
    this.#hs = hs;
    this.#scanner = scanner;
    this.#staging = staging;
    this.#staffRoom = staffRoom;
    this.#config = config;
    this.#prescans = prescans;
    this.queue = new WorkQueue<DocumentWorkRow>(
      db,
      { table: "document_work", key: "document_id", order: "q.run_after", maxAttempts: 20 },
      config.workers.leaseSeconds,
    );
  }

  worker(): Worker<DocumentWorkRow> {
    return new Worker<DocumentWorkRow>({
      name: "documents",
      queue: this.queue,
      concurrency: this.#config.workers.concurrency,
      pollMilliseconds: this.#config.workers.pollMilliseconds,
      handle: (row) => this.#handle(row),
      onGaveUp: async (row, err) => {
        log.error({ document: row.document_id, err }, "a document could not be processed and was set aside");
        const t = documentTexts(this.#config.organisations.language);
        await this.#staffRoom.post({ key: `stuck:${row.document_id}`, body: t.stuck(row.document_id, (err as Error).message) }).catch(() => undefined);
      },
    });
  }

  async #handle(row: DocumentWorkRow): Promise<void> {
    const doc = await store.findDocument(this.#db, row.document_id);
    if (!doc) return void (await this.queue.complete(row));
    if (doc.direction === "outbound") await this.#outbound(row, doc);
    else await this.#inbound(row, doc);
  }

  /** Scans `stream`; answers the verdict, or null when the scanner is down (the document is then held). */
  async #scan(
    row: DocumentWorkRow,
    doc: store.DocumentRow,
    open: () => Promise<{ stream: NodeJS.ReadableStream; size: number }>,
  ): Promise<(ScanVerdict & { whileReceiving?: boolean }) | "too-large" | null> {
    await store.setState(this.#db, doc.id, "scanning");
    const timer = scanDuration.startTimer();
    try {
      const early = await this.#prescans?.take(doc.id);
      if (early) {
        timer({ verdict: early.clean ? "clean" : "infected" });
        return { ...early, whileReceiving: true };
      }
      const { stream, size } = await open();
      const verdict = await this.#scanner.scan(stream, size);
      timer({ verdict: verdict.clean ? "clean" : "infected" });
      return verdict;
    } catch (err) {
      if (err instanceof TooLargeToScanError) {
        timer({ verdict: "too_large" });
        return "too-large";
      }
      if (!(err instanceof ScannerUnavailableError)) throw err;
      timer({ verdict: "unavailable" });
      const t = documentTexts(this.#config.organisations.language);
      await store.setState(this.#db, doc.id, "held", { reason: t.held });
      // Held documents wait as long as the scanner is away; waiting is not a failed attempt.
      await this.queue.postpone(row, Math.min(300, 5 * 2 ** Math.min(row.attempts, 6)), err.message);
      log.warn({ document: doc.id, err }, "scanner unavailable; document held");
      return null;
    }
  }

  async #room(organisationId: string): Promise<StoredOrganisation & { roomId: string }> {
    const org = await findOrganisation(this.#db, organisationId);
    if (!org?.roomId || org.roomState !== "ready") throw new RoomNotReady(`the room of ${organisationId} is not ready (${org?.roomState ?? "no organisation"})`);
    return org as StoredOrganisation & { roomId: string };
  }

  async #outbound(row: DocumentWorkRow, doc: store.DocumentRow): Promise<void> {
    const t = documentTexts(this.#config.organisations.language);
    if (doc.state === "rejected") return this.#finishRejection(row, doc);
    if (!doc.scanned_at) {
      const verdict = await this.#scan(row, doc, async () => ({ stream: this.#staging.read(doc.id), size: Number(doc.size) }));
      if (verdict === null) return;
      if (verdict === "too-large" || !verdict.clean) {
        const reason = verdict === "too-large" ? t.tooLarge(this.#config.scanning.maxStreamBytes) : t.infected(verdict.signature);
        const signature = verdict === "too-large" ? null : verdict.signature;
        await this.#staging.destroy(doc.id);
        await this.#db.transaction(async (tx) => {
          await store.setState(tx, doc.id, "rejected", { reason, signature, scanned: true, finished: true });
          await unlinkRejected(tx, doc);
          await audit(tx, {
            actor: "kuvert",
            action: "document.rejected",
            organisationId: doc.organisation_id,
            object: doc.id,
            outcome: "refused",
            details: { reason: verdict === "too-large" ? "too-large-to-scan" : "infected", signature, filename: doc.filename, ...(doc.supersedes ? { supersedes: doc.supersedes } : {}) },
          });
          await this.#staffRoom.alertByMail(tx, { key: `rejected:${doc.id}`, body: t.rejectedAlert(doc.filename, doc.organisation_id, reason) }, doc.organisation_id);
        });
        return this.#finishRejection(row, { ...doc, reason, state: "rejected" });
      }
      await this.#db.transaction(async (tx) => {
        await store.setState(tx, doc.id, "scanning", { scanned: true });
        await audit(tx, { actor: "kuvert", action: "document.scanned", organisationId: doc.organisation_id, object: doc.id, outcome: "ok", details: { verdict: "clean", durationMs: verdict.durationMs, whileReceiving: verdict.whileReceiving ?? false } });
      });
    }
    const org = await this.#room(doc.organisation_id);
    let mxc = doc.mxc_uri;
    if (!mxc || !doc.event_id) {
      if (!mxc) {
        mxc = await createMedia(this.#hs);
        if (mxc) await store.setMedia(this.#db, doc.id, mxc);
      }
      const uploaded = await uploadMedia(this.#hs, { path: this.#staging.path(doc.id) }, { filename: doc.filename, mimetype: doc.mimetype ?? "application/octet-stream", size: Number(doc.size) }, mxc);
      if (uploaded !== mxc) await store.setMedia(this.#db, doc.id, uploaded);
      mxc = uploaded;
    }
    // Each event with a transaction id of its own derived from the document: the short text, then
    // the file (and for a new version, the edit of the earlier announcement), so a rerun repeats none.
    const replaced = doc.supersedes ? await store.findDocument(this.#db, doc.supersedes) : null;
    const text = replaced?.event_id
      ? { ...notice(t.versionAnnouncement(doc, replaced)), "m.relates_to": { "m.in_reply_to": { event_id: replaced.event_id } } }
      : notice(t.announcement(doc));
    const announcementEventId = await this.#hs.send(org.roomId, "m.room.message", text, `document:${doc.id}:text`);
    const eventId = await this.#hs.send(
      org.roomId,
      "m.room.message",
      { msgtype: "m.file", body: doc.filename, filename: doc.filename, url: mxc, info: { mimetype: doc.mimetype ?? "application/octet-stream", size: Number(doc.size) } },
      `document:${doc.id}:file`,
    );
    if (replaced) await this.#markReplaced(org.roomId, replaced, doc, eventId);
    await this.#db.transaction(async (tx) => {
      await store.setState(tx, doc.id, "delivered", { eventId, announcementEventId, finished: true });
      const versionDetails = replaced ? { supersedes: replaced.id, version: doc.version } : {};
      await audit(tx, { actor: "kuvert", action: "document.delivered", organisationId: doc.organisation_id, object: doc.id, outcome: "ok", details: { roomId: org.roomId, eventId, ...versionDetails } });
      if (replaced) {
        await audit(tx, { actor: "kuvert", action: "document.superseded", organisationId: doc.organisation_id, object: replaced.id, outcome: "ok", details: { supersededBy: doc.id, version: replaced.version, newVersion: doc.version } });
      }
      const title = replaced ? documentTexts(this.#config.mail.language).newVersionTitle(doc.kind, doc.version) : (doc.kind ?? t.untitled);
      await this.#notifyClerks(tx, org, doc.id, { title, ...(doc.reference ? { reference: doc.reference } : {}) });
    });
    await this.#staging.destroy(doc.id);
    await this.queue.complete(row);
    log.info({ document: doc.id, organisation: doc.organisation_id }, "document delivered");
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

  async #inbound(row: DocumentWorkRow, doc: store.DocumentRow): Promise<void> {
    const t = documentTexts(this.#config.organisations.language);
    const org = await this.#room(doc.organisation_id);
    if (doc.state === "received" || doc.state === "scanning" || doc.state === "held") {
      const verdict = await this.#scan(row, doc, async () => {
        const media = await downloadMedia(this.#hs, doc.source_mxc!);
        return { stream: media.stream, size: media.size ?? Number(doc.size) };
      });
      if (verdict === null) return;
      if (verdict !== "too-large" && verdict.clean) {
        await this.#db.transaction(async (tx) => {
          await store.setState(tx, doc.id, "checked", { scanned: true, finished: true });
          await audit(tx, { actor: "kuvert", action: "inbound.checked", organisationId: org.id, object: doc.id, outcome: "ok", details: { eventId: doc.room_event_id, sender: doc.submitted_by } });
          await this.#notifyInbound(tx, org, doc);
        });
        doc = { ...doc, state: "checked" };
      } else {
        const reason = verdict === "too-large" ? t.tooLarge(this.#config.scanning.maxStreamBytes) : t.infected(verdict.signature);
        await this.#db.transaction(async (tx) => {
          await store.setState(tx, doc.id, "removed", { reason, signature: verdict === "too-large" ? null : verdict.signature, scanned: true, finished: true });
          await audit(tx, {
            actor: "kuvert",
            action: "inbound.removed",
            organisationId: org.id,
            object: doc.id,
            outcome: "refused",
            details: { eventId: doc.room_event_id, sender: doc.submitted_by, reason: verdict === "too-large" ? "too-large-to-scan" : "infected", signature: verdict === "too-large" ? null : verdict.signature },
          });
          await this.#staffRoom.alertByMail(tx, { key: `removed:${doc.id}`, body: t.removedAlert(doc.filename, org.name, reason) }, org.id);
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
      if (this.#config.homeserver.adminToken) {
        await quarantineMedia(this.#hs, this.#config.homeserver.adminToken, doc.source_mxc!).catch((err: unknown) => {
          if (err instanceof HomeserverError && err.status === 404) return;
          throw err;
        });
      } else {
        log.warn({ document: doc.id }, "no homeserver admin token configured: the infected media was redacted but not quarantined");
      }
      await this.#hs.send(org.roomId, "m.room.message", notice({ body: t.removedInRoom(doc.filename, doc.reason ?? "") }), `document:${doc.id}:removed`);
      await this.#staffRoom.post({ key: `removed:${doc.id}`, body: t.removedAlert(doc.filename, org.name, doc.reason ?? "") });
    }
    await this.queue.complete(row);
  }

  /** A clean upload from a clerk goes to the staff mailbox; one from staff goes to the clerks, like a delivery. */
  async #notifyInbound(tx: Queryable, org: StoredOrganisation & { roomId: string }, doc: store.DocumentRow): Promise<void> {
    const isClerk = org.clerks.some((c) => c.matrixId === doc.submitted_by && c.status === "active");
    if (isClerk) {
      const mailbox = this.#config.mail.staffMailbox;
      if (!mailbox) return;
      await enqueueNotification(tx, {
        kind: "inbound-file",
        to: mailbox,
        organisationId: org.id,
        organisationName: org.name,
        roomId: org.roomId,
        items: [{ title: doc.filename }],
        language: this.#config.mail.language,
        dedupeKey: `inbound:${doc.id}`,
      });
      return;
    }
    await this.#notifyClerks(tx, org, doc.id, { title: documentTexts(this.#config.organisations.language).untitled });
  }

  /**
   * Tells every clerk with an e-mail address that something new is in the room. The item names
   * the kind and reference, never the file name: names of files can carry personal data.
   */
  async #notifyClerks(tx: Queryable, org: StoredOrganisation & { roomId: string }, documentId: string, item: { title: string; reference?: string }): Promise<void> {
    for (const clerk of org.clerks) {
      if (clerk.status !== "active" || !clerk.email) continue;
      await enqueueNotification(tx, {
        kind: "document",
        to: clerk.email,
        organisationId: org.id,
        organisationName: org.name,
        roomId: org.roomId,
        items: [item],
        language: this.#config.mail.language,
        dedupeKey: `document:${documentId}:${clerk.email}`,
      });
    }
  }
}
