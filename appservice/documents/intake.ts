// One way in for every outbound document (drop API, drop folder, batches): checked, staged,
// recorded — and only then accepted.
import type { Readable } from "node:stream";
import { auditMany, type AuditEntry } from "../audit/audit.ts";
import type { KuvertConfig } from "../config/schema.ts";
import type { Database } from "../db/database.ts";
import { BatchWriter } from "../workers/batch.ts";
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

/** A plain upload (no idempotency key, no earlier version) waiting to be recorded with others. */
interface Recorded {
  doc: store.NewDocument;
  entries: AuditEntry[];
  /** Its row, once its batch is committed. */
  inserted: store.DocumentRow | null;
}

/** Most uploads recorded in one transaction. */
const MAX_BATCH = 64;
/** How long a batch of uploads waits for others still arriving. */
const GATHER_MS = 50;

export class DocumentIntake {
  readonly #db: Database;
  readonly #staging: Staging;
  readonly #config: KuvertConfig;
  readonly #onWork: () => void;
  readonly #prescans: Prescans | undefined;
  readonly #pacer: IntakePacer | undefined;
  readonly #recorder: BatchWriter<Recorded>;
  /** Uploads let in, from their first byte until they are recorded or refused. */
  #arriving = 0;

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
    this.#recorder = new BatchWriter<Recorded>({
      db,
      maxBatch: MAX_BATCH,
      // While other uploads are arriving, a batch waits a moment for them (one upload alone goes at once).
      gather: { ms: GATHER_MS, while: () => this.#arriving > this.#recorder.waiting },
      write: async (tx, batch) => {
        const inserted = await store.insertDocuments(
          tx,
          batch.map((r) => r.doc),
        );
        const byId = new Map(inserted.map((row) => [row.id, row]));
        for (const r of batch) r.inserted = byId.get(r.doc.id) ?? null;
        await auditMany(
          tx,
          batch.flatMap((r) => r.entries),
        );
      },
    });
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
    this.#arriving++;
    try {
      return await this.#receive(s, { organisationId: org.id, filename, kind, reference });
    } finally {
      this.#arriving--;
    }
  }

  /** Stages and records an upload the organisation takes. */
  async #receive(s: OutboundSubmission, { organisationId, filename, kind, reference }: { organisationId: string; filename: string; kind: string | null; reference: string | null }): Promise<Accepted> {
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
      const rowsOf = (replaced: { id: string; version: number } | null): { doc: store.NewDocument; entries: AuditEntry[] } => {
        const version = replaced ? { supersedes: replaced.id, version: replaced.version + 1 } : {};
        const doc: store.NewDocument = {
          id,
          direction: "outbound",
          organisationId,
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
        };
        const received: AuditEntry = {
          actor: s.submittedBy,
          action: "document.received",
          organisationId,
          object: id,
          outcome: "ok",
          details: { filename, kind, reference, size: staged.size, mimetype: staged.mimetype, sha256: staged.sha256, source: s.source, ...version },
        };
        return { doc, entries: settled ? [received, scannedEntry(organisationId, id, settled.durationMs, true)] : [received] };
      };
      let result: Accepted;
      if (!s.idempotency && !s.supersedes) {
        // Nothing to look up first: recorded with other uploads that end about now, in one transaction.
        const plain: Recorded = { ...rowsOf(null), inserted: null };
        await this.#recorder.record(plain);
        result = { document: store.toRecord(plain.inserted!), replayed: false };
      } else {
        result = await this.#db.transaction(async (tx): Promise<Accepted> => {
          const earlier = s.idempotency ? await store.findByIdempotencyKey(tx, s.idempotency.scope, s.idempotency.key) : null;
          const replaced = s.supersedes && !earlier ? await findReplaceable(tx, organisationId, s.supersedes, true) : null;
          const { doc, entries } = rowsOf(replaced);
          const inserted = await store.insertDocument(tx, doc);
          if (!inserted) {
            const first = await store.findByIdempotencyKey(tx, s.idempotency!.scope, s.idempotency!.key);
            if (!first || first.sha256 !== staged.sha256 || first.organisation_id !== organisationId) {
              throw new KuvertError(ErrCode.IdempotencyMismatch, "This Idempotency-Key was used for a different document; use a new key for a new document.");
            }
            return { document: store.toRecord(first), replayed: true };
          }
          if (replaced) await linkVersions(tx, replaced.id, id);
          await auditMany(tx, entries);
          return { document: store.toRecord(inserted), replayed: false };
        });
      }
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
