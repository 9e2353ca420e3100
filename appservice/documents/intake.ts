// One way in for every outbound document (drop API, drop folder, batches): checked, staged,
// recorded — and only then accepted.
import type { Readable } from "node:stream";
import { auditMany, type AuditEntry } from "../audit/audit.ts";
import type { KuvertConfig } from "../config/schema.ts";
import type { Database } from "../db/database.ts";
import { ErrCode, KuvertError } from "../errors.ts";
import { organisationStates } from "../organisations/store.ts";
import { checkContent } from "../files/content.ts";
import { checkFilename } from "../files/names.ts";
import { checkShortText, newDocumentId, scannedEntry, type DocumentRecord } from "./model.ts";
import { intakeWaitSeconds } from "./metrics.ts";
import type { IntakePacer } from "./pacing.ts";
import type { Prescans } from "./prescan.ts";
import type { Staging } from "../files/staging.ts";
import * as store from "./store.ts";
import { findReplaceable, linkVersions, type Supersedes } from "./versions.ts";

export interface OutboundSubmission {
  organisationId: string;
  filename: string | undefined;
  kind?: string | undefined;
  reference?: string | undefined;
  source: "api" | "folder" | "batch" | "console";
  /** The actor: token:<name>, cli:<user>, or a Matrix ID. */
  submittedBy: string;
  /** The batch the document came in (source "batch"). */
  batchId?: string | undefined;
  /** A retried submission with the same scope and key returns the first result. */
  idempotency?: { scope: string; key: string } | undefined;
  /** The version this document replaces (see versions.ts). */
  supersedes?: Supersedes | null | undefined;
  content: Readable;
}

export interface Accepted {
  document: DocumentRecord;
  /** True when the idempotency key named an earlier submission of the same content. */
  replayed: boolean;
}

export class DocumentIntake {
  readonly #db: Database;
  readonly #staging: Staging;
  readonly #config: KuvertConfig;
  readonly #onWork: () => void;
  readonly #prescans: Prescans | undefined;
  readonly #pacer: IntakePacer | undefined;

  /**
   * With `prescans`, documents are scanned while they arrive (see prescan.ts); with `pacer`, they
   * wait before they are read while many wait for delivery (see pacing.ts).
   */
  constructor(db: Database, staging: Staging, config: KuvertConfig, onWork: () => void, prescans?: Prescans, pacer?: IntakePacer) {
    this.#db = db;
    this.#staging = staging;
    this.#config = config;
    this.#onWork = onWork;
    this.#prescans = prescans;
    this.#pacer = pacer;
  }

  /** The largest document accepted: the configured maximum, but never more than clamd scans. */
  get limitBytes(): number {
    return Math.min(this.#config.documents.maxBytes, this.#config.scanning.maxStreamBytes);
  }

  async accept(s: OutboundSubmission): Promise<Accepted> {
    const filename = checkFilename(s.filename);
    const kind = checkShortText("kind", s.kind);
    const reference = checkShortText("reference", s.reference);
    // Its id and state are all the intake needs (one query; the clerks come with delivery).
    const [org] = await organisationStates(this.#db, { ids: [s.organisationId] });
    if (!org) throw new KuvertError(ErrCode.NotFound, `There is no organisation with the id ${s.organisationId}.`);
    if (org.state === "archived") throw new KuvertError(ErrCode.Archived, `Organisation ${s.organisationId} is archived and receives no documents.`);

    // A replacement that cannot be: refused before the upload is read (and again, locked, below).
    const retried = s.idempotency ? await store.findByIdempotencyKey(this.#db, s.idempotency.scope, s.idempotency.key) : null;
    if (s.supersedes && !retried) await findReplaceable(this.#db, org.id, s.supersedes, false);

    if (this.#pacer) {
      const waited = await this.#pacer.admit();
      if (waited > 0) intakeWaitSeconds.inc(waited / 1000);
    }
    const id = newDocumentId();
    const prescan = this.#prescans?.start();
    let staged;
    try {
      staged = await this.#staging.write(id, s.content, this.limitBytes, prescan?.tap);
    } catch (err) {
      if (err instanceof KuvertError && err.errcode === ErrCode.TooLarge && this.#config.scanning.maxStreamBytes < this.#config.documents.maxBytes) {
        throw new KuvertError(ErrCode.TooLarge, `The document is larger than the ${this.limitBytes} bytes the virus scanner checks; Kuvert delivers nothing unscanned.`);
      }
      throw err;
    }
    try {
      // The name must say what the content is; no active content unless configured.
      checkContent(filename, staged.mimetype, this.#config.documents);
      // Clean already (scanned while it arrived): recorded with the document, so no process scans it again.
      const settled = prescan ? await this.#prescans!.settle(prescan.verdict, staged.size, staged.head) : undefined;
      const result = await this.#db.transaction(async (tx): Promise<Accepted> => {
        const earlier = s.idempotency ? await store.findByIdempotencyKey(tx, s.idempotency.scope, s.idempotency.key) : null;
        const replaced = s.supersedes && !earlier ? await findReplaceable(tx, org.id, s.supersedes, true) : null;
        const inserted = await store.insertDocument(tx, {
          id,
          direction: "outbound",
          organisationId: org.id,
          source: s.source,
          submittedBy: s.submittedBy,
          filename,
          kind,
          reference,
          mimetype: staged.mimetype,
          size: staged.size,
          sha256: staged.sha256,
          idempotencyScope: s.idempotency?.scope ?? null,
          idempotencyKey: s.idempotency?.key ?? null,
          batchId: s.batchId ?? null,
          supersedes: replaced?.id ?? null,
          version: replaced ? replaced.version + 1 : 1,
          scanned: settled !== undefined,
        });
        if (!inserted) {
          const first = await store.findByIdempotencyKey(tx, s.idempotency!.scope, s.idempotency!.key);
          if (!first || first.sha256 !== staged.sha256 || first.organisation_id !== org.id) {
            throw new KuvertError(ErrCode.IdempotencyMismatch, "This Idempotency-Key was used for a different document; use a new key for a new document.");
          }
          return { document: store.toRecord(first), replayed: true };
        }
        if (replaced) await linkVersions(tx, replaced.id, id);
        const received: AuditEntry = {
          actor: s.submittedBy,
          action: "document.received",
          organisationId: org.id,
          object: id,
          outcome: "ok",
          details: { filename, kind, reference, size: staged.size, mimetype: staged.mimetype, sha256: staged.sha256, source: s.source, ...(replaced ? { supersedes: replaced.id, version: replaced.version + 1 } : {}) },
        };
        await auditMany(tx, settled ? [received, scannedEntry(org.id, id, settled.durationMs, true)] : [received]);
        return { document: store.toRecord(inserted), replayed: false };
      });
      if (result.replayed) {
        prescan?.tap.abort();
        await this.#staging.destroy(id);
      } else {
        if (prescan && !settled) this.#prescans!.keep(id, staged.size, prescan.verdict);
        this.#onWork();
      }
      return result;
    } catch (err) {
      prescan?.tap.abort();
      await this.#staging.destroy(id);
      throw err;
    }
  }
}
