// Bulk batches: many documents for many organisations in one ZIP with a manifest
// (manifest.csv or manifest.json) that maps each file to an organisation id. The ZIP is
// accepted once it is staged and recorded; a worker then feeds each entry through the same
// intake as every other document, idempotent per entry, so a crash anywhere repeats nothing.
//
// manifest.csv: columns file, organisation, kind, reference, supersedes, supersedes_reference
// (all but file and organisation optional; delimiter comma, semicolon or tab, from the header),
// optionally after a first line "#version: 1". manifest.json: an array of { "file",
// "organisation", "kind"?, "reference"?, "supersedes"?, "supersedesReference"? }, or
// { "version": 1, "documents": [ … ] }. No version means the current one (formats.ts).
import { randomBytes } from "node:crypto";
import type { Readable } from "node:stream";
import { parse } from "csv-parse/sync";
import yauzl from "yauzl";
import { audit } from "../audit/audit.ts";
import type { KuvertConfig } from "../config/schema.ts";
import type { Database } from "../db/database.ts";
import { ErrCode, KuvertError } from "../errors.ts";
import { logger } from "../log.ts";
import { Worker, WorkQueue, type QueueRow } from "../workers/queue.ts";
import { checkFormatVersion } from "./formats.ts";
import type { DocumentIntake } from "./intake.ts";
import { parseSupersedes } from "./versions.ts";
import type { Staging } from "../files/staging.ts";

const log = logger("batches");

export const MANIFEST_NAMES = ["manifest.csv", "manifest.json"] as const;
/** A batch may be larger than one document: it holds many. */
export const BATCH_MAX_BYTES = 4 * 1024 * 1024 * 1024;
const MAX_ENTRIES = 10_000;

export interface ManifestEntry {
  line: number;
  file: string;
  organisationId: string;
  kind: string | null;
  reference: string | null;
  /** The version the entry's document replaces: its id, or its reference in the same organisation. */
  supersedes: string | null;
  supersedesReference: string | null;
}

function manifestError(message: string): KuvertError {
  return new KuvertError(ErrCode.InvalidInput, `The manifest is not usable: ${message}`);
}

/** Refuses a manifest whose version field names a format this Kuvert does not read (other problems are found later). */
export function checkManifestVersion(name: string, text: string): void {
  if (name.endsWith(".json")) {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      return;
    }
    if (!Array.isArray(value) && typeof value === "object" && value !== null) checkFormatVersion((value as { version?: unknown }).version, "manifest.json");
    return;
  }
  const versionLine = /^\uFEFF?#\s*version\s*[:=]\s*([^\r\n]*)/i.exec(text);
  if (versionLine) checkFormatVersion(versionLine[1]!.trim(), "manifest.csv");
}

/** Reads a manifest. Structural problems refuse the batch; problems of single entries are the entries' own. */
export function parseManifest(name: string, text: string): ManifestEntry[] {
  let rows: Record<string, unknown>[];
  if (name.endsWith(".json")) {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (err) {
      throw manifestError(`manifest.json is not valid JSON (${(err as Error).message})`);
    }
    if (!Array.isArray(value) && typeof value === "object" && value !== null) checkFormatVersion((value as { version?: unknown }).version, "manifest.json");
    const list = Array.isArray(value) ? value : (value as { documents?: unknown } | null)?.documents;
    if (!Array.isArray(list)) throw manifestError('manifest.json must be an array of entries or { "documents": [ … ] }');
    rows = list.map((v) => (typeof v === "object" && v !== null ? (v as Record<string, unknown>) : {}));
  } else {
    let body = text.replace(/^\uFEFF/, "");
    const versionLine = /^#\s*version\s*[:=]\s*([^\r\n]*)\r?\n/i.exec(body);
    if (versionLine) {
      checkFormatVersion(versionLine[1]!.trim(), "manifest.csv");
      body = body.slice(versionLine[0].length);
    }
    const header = body.split(/\r?\n/, 1)[0] ?? "";
    const delimiter = header.includes("\t") ? "\t" : header.includes(";") && !header.includes(",") ? ";" : ",";
    try {
      rows = parse(body, { columns: (h: string[]) => h.map((c) => c.trim().toLowerCase()), skip_empty_lines: true, trim: true, delimiter }) as Record<string, unknown>[];
    } catch (err) {
      throw manifestError(`manifest.csv cannot be read (${(err as Error).message})`);
    }
    if (rows.length > 0 && (!("file" in rows[0]!) || !("organisation" in rows[0]!))) throw manifestError("manifest.csv needs the columns file and organisation");
  }
  if (rows.length === 0) throw manifestError("it lists no documents");
  if (rows.length > MAX_ENTRIES) throw manifestError(`it lists ${rows.length} documents; at most ${MAX_ENTRIES} per batch`);
  const text_ = (v: unknown) => (typeof v === "string" && v.trim() !== "" ? v.trim() : null);
  return rows.map((r, i) => ({
    line: name.endsWith(".json") ? i + 1 : i + 2,
    file: text_(r.file) ?? "",
    organisationId: text_(r.organisation) ?? "",
    kind: text_(r.kind),
    reference: text_(r.reference),
    supersedes: text_(r.supersedes),
    supersedesReference: text_(r.supersedesReference ?? r.supersedes_reference),
  }));
}

interface BatchWorkRow extends QueueRow {
  batch_id: string;
}

interface ZipHandle {
  entries: Map<string, yauzl.Entry>;
  open(entry: yauzl.Entry): Promise<Readable>;
  close(): void;
}

function openZip(path: string): Promise<ZipHandle> {
  return new Promise((resolve, reject) => {
    yauzl.open(path, { lazyEntries: true, autoClose: false, strictFileNames: false, validateEntrySizes: true }, (err, zip) => {
      if (err || !zip) return reject(new KuvertError(ErrCode.InvalidInput, `The batch is not a readable ZIP file: ${err?.message ?? "unknown error"}`));
      const entries = new Map<string, yauzl.Entry>();
      zip.on("entry", (entry: yauzl.Entry) => {
        if (!entry.fileName.endsWith("/")) entries.set(entry.fileName, entry);
        zip.readEntry();
      });
      zip.on("end", () =>
        resolve({
          entries,
          open: (entry) => new Promise((ok, fail) => zip.openReadStream(entry, (e, stream) => (e || !stream ? fail(e ?? new Error("no stream")) : ok(stream)))),
          close: () => zip.close(),
        }),
      );
      zip.on("error", (e: Error) => reject(new KuvertError(ErrCode.InvalidInput, `The batch is not a readable ZIP file: ${e.message}`)));
      zip.readEntry();
    });
  });
}

async function readAll(stream: Readable, limit: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream) {
    size += (chunk as Buffer).length;
    if (size > limit) throw manifestError(`it is larger than ${limit} bytes`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString("utf8");
}

export interface BatchStatus {
  id: string;
  state: string;
  reason: string | null;
  createdAt: string;
  total: number | null;
  /** Documents by state, plus entries refused before they became documents ("error"). */
  counts: Record<string, number>;
  /** True when every entry has reached its end: delivered, rejected, or refused. */
  finished: boolean;
  entries: { line: number; file: string; organisation: string; documentId: string | null; state: string; reason: string | null; errcode: string | null }[];
}

export class Batches {
  readonly #db: Database;
  readonly #staging: Staging;
  readonly #intake: DocumentIntake;
  readonly #config: KuvertConfig;
  readonly #onWork: () => void;
  readonly queue: WorkQueue<BatchWorkRow>;

  constructor(db: Database, staging: Staging, intake: DocumentIntake, config: KuvertConfig, onWork: () => void) {
    this.#db = db;
    this.#staging = staging;
    this.#intake = intake;
    this.#config = config;
    this.#onWork = onWork;
    this.queue = new WorkQueue<BatchWorkRow>(db, { table: "batch_work", key: "batch_id", order: "q.run_after", maxAttempts: 20 }, config.workers.leaseSeconds);
  }

  /** Stages the ZIP, checks it has a manifest, records it. Answers once it is safe. */
  async accept(content: Readable, opts: { submittedBy: string; organisations: string[] | null; idempotency?: { scope: string; key: string } | undefined }): Promise<{ id: string; replayed: boolean }> {
    const id = `batch_${randomBytes(12).toString("base64url")}`;
    const staged = await this.#staging.write(id, content, BATCH_MAX_BYTES);
    try {
      await this.#staging.local(id, async (path) => {
        const zip = await openZip(path);
        try {
          if (!MANIFEST_NAMES.some((n) => zip.entries.has(n))) {
            throw new KuvertError(ErrCode.InvalidInput, `The ZIP has no manifest: put ${MANIFEST_NAMES.join(" or ")} at its top level.`);
          }
          const manifestName = MANIFEST_NAMES.find((n) => zip.entries.has(n))!;
          checkManifestVersion(manifestName, await readAll(await zip.open(zip.entries.get(manifestName)!), 10 * 1024 * 1024));
        } finally {
          zip.close();
        }
      });
      const result = await this.#db.transaction(async (tx) => {
        const inserted = await tx.query(
          `INSERT INTO batches (id, submitted_by, size, organisations, idempotency_scope, idempotency_key) VALUES ($1, $2, $3, $4, $5, $6)
           ON CONFLICT DO NOTHING`,
          [id, opts.submittedBy, staged.size, opts.organisations, opts.idempotency?.scope ?? null, opts.idempotency?.key ?? null],
        );
        if (inserted.rowCount === 0) {
          const first = await tx.query<{ id: string }>("SELECT id FROM batches WHERE idempotency_scope = $1 AND idempotency_key = $2", [opts.idempotency!.scope, opts.idempotency!.key]);
          return { id: first.rows[0]!.id, replayed: true };
        }
        await tx.query("INSERT INTO batch_work (batch_id) VALUES ($1)", [id]);
        await audit(tx, { actor: opts.submittedBy, action: "batch.received", object: id, outcome: "ok", details: { size: staged.size, sha256: staged.sha256 } });
        return { id, replayed: false };
      });
      if (result.replayed) await this.#staging.destroy(id);
      else this.#onWork();
      return result;
    } catch (err) {
      await this.#staging.destroy(id);
      throw err;
    }
  }

  worker(): Worker<BatchWorkRow> {
    return new Worker<BatchWorkRow>({
      name: "batches",
      queue: this.queue,
      concurrency: 1,
      pollMilliseconds: this.#config.workers.pollMilliseconds,
      handle: async (row) => {
        await this.#expand(row.batch_id);
        await this.queue.complete(row);
      },
      onGaveUp: async (row, err) => log.error({ batch: row.batch_id, err }, "a batch could not be expanded"),
    });
  }

  async #expand(batchId: string): Promise<void> {
    const batch = (await this.#db.query<{ state: string; organisations: string[] | null; submitted_by: string }>("SELECT state, organisations, submitted_by FROM batches WHERE id = $1", [batchId])).rows[0];
    if (!batch || batch.state !== "received") return;
    // The ZIP is read at random places: from a local path (the staged file or a local copy of it).
    await this.#staging.local(batchId, (path) => this.#expandZip(batchId, batch, path));
  }

  async #expandZip(batchId: string, batch: { state: string; organisations: string[] | null; submitted_by: string }, path: string): Promise<void> {
    const zip = await openZip(path);
    try {
      let entries = (
        await this.#db.query<{ line: number; file: string; organisation_id: string; kind: string | null; reference: string | null; supersedes: string | null; supersedes_reference: string | null; document_id: string | null; errcode: string | null }>(
          "SELECT * FROM batch_entries WHERE batch_id = $1 ORDER BY line",
          [batchId],
        )
      ).rows;
      if (entries.length === 0) {
        const manifestName = MANIFEST_NAMES.find((n) => zip.entries.has(n))!;
        let manifest: ManifestEntry[];
        try {
          manifest = parseManifest(manifestName, await readAll(await zip.open(zip.entries.get(manifestName)!), 10 * 1024 * 1024));
        } catch (err) {
          if (!(err instanceof KuvertError)) throw err;
          await this.#db.transaction(async (tx) => {
            await tx.query("UPDATE batches SET state = 'rejected', reason = $2, expanded_at = now() WHERE id = $1", [batchId, err.message]);
            await audit(tx, { actor: "kuvert", action: "batch.rejected", object: batchId, outcome: "refused", details: { reason: err.message } });
          });
          await this.#staging.destroy(batchId);
          return;
        }
        await this.#db.transaction(async (tx) => {
          const seen = new Map<string, number>();
          for (const e of manifest) {
            const first = seen.get(e.file);
            const error = !e.file
              ? "the entry names no file"
              : !e.organisationId
                ? "the entry names no organisation"
                : first !== undefined
                  ? `the file is listed again (first on line ${first})`
                  : !zip.entries.has(e.file)
                    ? "the file is not in the ZIP"
                    : batch.organisations && !batch.organisations.includes(e.organisationId)
                      ? `the token may not deliver to organisation ${e.organisationId}`
                      : null;
            if (e.file && first === undefined) seen.set(e.file, e.line);
            const errcode = error === null ? null : error.startsWith("the token") ? ErrCode.OutOfScope : ErrCode.InvalidInput;
            await tx.query(
              `INSERT INTO batch_entries (batch_id, line, file, organisation_id, kind, reference, errcode, error, supersedes, supersedes_reference)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING`,
              [batchId, e.line, e.file, e.organisationId, e.kind, e.reference, errcode, error, e.supersedes, e.supersedesReference],
            );
          }
          await tx.query("UPDATE batches SET entry_count = $2 WHERE id = $1", [batchId, manifest.length]);
        });
        entries = (await this.#db.query<(typeof entries)[number]>("SELECT * FROM batch_entries WHERE batch_id = $1 ORDER BY line", [batchId])).rows;
      }
      for (const e of entries) {
        if (e.document_id || e.errcode) continue;
        try {
          const accepted = await this.#intake.accept({
            organisationId: e.organisation_id,
            filename: e.file.split("/").pop(),
            kind: e.kind ?? undefined,
            reference: e.reference ?? undefined,
            source: "batch",
            submittedBy: batch.submitted_by,
            batchId,
            // One key per entry: after a crash, the entry is accepted again as the same document.
            idempotency: { scope: `batch:${batchId}`, key: String(e.line) },
            supersedes: parseSupersedes(e.supersedes, e.supersedes_reference),
            content: await zip.open(zip.entries.get(e.file)!),
          });
          await this.#db.query("UPDATE batch_entries SET document_id = $3 WHERE batch_id = $1 AND line = $2", [batchId, e.line, accepted.document.id]);
        } catch (err) {
          if (!(err instanceof KuvertError)) throw err;
          await this.#db.query("UPDATE batch_entries SET errcode = $3, error = $4 WHERE batch_id = $1 AND line = $2", [batchId, e.line, err.errcode, err.message]);
        }
      }
      await this.#db.transaction(async (tx) => {
        await tx.query("UPDATE batches SET state = 'expanded', expanded_at = now() WHERE id = $1", [batchId]);
        await audit(tx, { actor: "kuvert", action: "batch.expanded", object: batchId, outcome: "ok", details: { entries: entries.length } });
      });
    } finally {
      zip.close();
    }
    await this.#staging.destroy(batchId);
  }

  /** Where the batch is, with a line per entry. Null for an unknown batch or one another token sent. */
  async status(batchId: string, submittedBy: string | null): Promise<BatchStatus | null> {
    const batch = (await this.#db.query<{ id: string; state: string; reason: string | null; created_at: Date; entry_count: number | null; submitted_by: string }>("SELECT * FROM batches WHERE id = $1", [batchId])).rows[0];
    if (!batch || (submittedBy !== null && batch.submitted_by !== submittedBy)) return null;
    const rows = (
      await this.#db.query<{ line: number; file: string; organisation_id: string; document_id: string | null; errcode: string | null; error: string | null; state: string | null; reason: string | null }>(
        `SELECT e.line, e.file, e.organisation_id, e.document_id, e.errcode, e.error, d.state, d.reason
           FROM batch_entries e LEFT JOIN documents d ON d.id = e.document_id
          WHERE e.batch_id = $1 ORDER BY e.line`,
        [batchId],
      )
    ).rows;
    const entries = rows.map((r) => ({
      line: r.line,
      file: r.file,
      organisation: r.organisation_id,
      documentId: r.document_id,
      state: r.errcode ? "error" : (r.state ?? "waiting"),
      reason: r.error ?? r.reason,
      errcode: r.errcode,
    }));
    const counts: Record<string, number> = {};
    for (const e of entries) counts[e.state] = (counts[e.state] ?? 0) + 1;
    const terminal = new Set(["delivered", "rejected", "failed", "error"]);
    const finished = batch.state === "rejected" || (batch.state === "expanded" && entries.every((e) => terminal.has(e.state)));
    return { id: batch.id, state: batch.state, reason: batch.reason, createdAt: batch.created_at.toISOString(), total: batch.entry_count, counts, finished, entries };
  }
}
