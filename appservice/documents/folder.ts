// The drop folder: the back office drops documents into a folder, one sub-folder per
// organisation id, and Kuvert takes them from there:
//
//   <dir>/musterstadt/Beitragsbescheid 2026.pdf   → a document for organisation "musterstadt"
//   <dir>/unroutable/<folder>/<name>              ← what Kuvert could not deliver, with
//   <dir>/unroutable/<folder>/<name>.reason.txt     the reason beside it (German and English)
//
// How to drop a file so that Kuvert never takes half of it: write it under a temporary name —
// `.name.part` (or any name starting with "."), `name.part`, `name.tmp` or `name~` — and rename
// it to its final name when it is complete (a rename inside one folder is atomic). Kuvert never
// takes temporary names. A file written in place under its final name works too, more slowly:
// Kuvert takes a file only when its size and modification time have not changed for
// `documents.dropFolder.stableSeconds`, watched across polls. Both ways end up the same: only
// stable files with final names are taken.
//
// Taking a file means handing it to DocumentIntake.accept (checked, staged, recorded) and
// deleting it only after that answered: a file that left the folder is in the database and
// in staging. The idempotency key names the file's version (organisation, name, size, mtime,
// inode), so a crash between acceptance and deletion makes the next pass a replay that
// returns the first document. A failure that is not Kuvert refusing the file (database
// down, disk full) leaves the file where it is for the next pass. A file Kuvert refuses
// (unknown organisation, bad name, empty, wrong type, too large, archived organisation)
// is moved to `unroutable/`, never guessed elsewhere, and staff are alerted.
//
// A document may have a description beside it, `<name>.kuvert.json` (kind, reference, the
// version it replaces, the format version; see description.ts). Description files are never
// taken as documents; a description that is not usable sends the document to `unroutable/`.
//
// Only regular files directly inside an organisation folder are taken. Files directly in
// `dir`, folders inside organisation folders and other special files are left alone (and
// logged once); symbolic links are never followed but moved to `unroutable/`. Files are
// opened without following links, so nothing outside `dir` is ever read.
//
// Polling, not fs.watch: change events are unreliable on network shares. Logs carry counts,
// organisation ids and document ids, never file names.
import { constants, type Stats } from "node:fs";
import { link, lstat, mkdir, open, readdir, rename, rm, unlink, writeFile, type FileHandle } from "node:fs/promises";
import { extname, join, resolve } from "node:path";
import { Readable } from "node:stream";
import type { KuvertConfig } from "../config/schema.ts";
import { ErrCode, KuvertError } from "../errors.ts";
import { logger } from "../log.ts";
import { slugPattern } from "../organisations/model.ts";
import type { StaffRoom } from "../staff/staffroom.ts";
import { isDescriptionName, readDescription, DESCRIPTION_SUFFIX } from "./description.ts";
import type { DocumentIntake } from "./intake.ts";
import { DocumentErr } from "./errors.ts";

const log = logger("drop-folder");

/** The folder inside `dir` where refused files go; never an organisation folder. */
export const UNROUTABLE = "unroutable";

export interface ScanReport {
  /** Files handed to intake (or found already accepted) and removed from the folder. */
  taken: number;
  /** Files moved to `unroutable/`. */
  unroutable: number;
  /** Files left for a later pass: still being written, under a temporary name, or after a transient failure. */
  waiting: number;
}

/** A name the writer is still working on: hidden, `.part`, `.tmp` or ending in `~`. */
export function isTemporaryName(name: string): boolean {
  const lower = name.toLowerCase();
  return name.startsWith(".") || lower.endsWith(".part") || lower.endsWith(".tmp") || name.endsWith("~");
}

/** The idempotency key of one version of a dropped file (scope "folder"). */
export function dropIdempotencyKey(organisationId: string, filename: string, stat: { size: number; mtimeMs: number; ino: number | bigint }): string {
  return `${organisationId}/${filename}/${stat.size}/${stat.mtimeMs}/${stat.ino}`;
}

interface Observation {
  size: number;
  mtimeMs: number;
  ino: number;
  /** Monotonic time (ms) since which size, mtime and inode have been as above. */
  since: number;
  /** The last transient error logged for this file, so a retried failure is logged once. */
  lastError?: string;
}

interface Reason {
  de: string;
  en: string;
  errcode?: string;
}

const germanReasons: Partial<Record<string, string>> = {
  [ErrCode.EmptyFile]: "Die Datei ist leer.",
  [ErrCode.TypeNotAllowed]: "Dateien dieses Typs werden nicht angenommen (geprüft wird der Inhalt, nicht der Dateiname).",
  [ErrCode.TooLarge]: "Die Datei ist größer, als Kuvert annimmt (oder als der Virenscanner prüft); ungeprüft wird nichts zugestellt.",
  [ErrCode.InvalidFilename]: "Der Dateiname wird nicht angenommen (z. B. Steuer- oder Schreibrichtungszeichen, Leerzeichen am Anfang oder Ende, zu lang).",
  [ErrCode.Archived]: "Die Organisation ist archiviert und erhält keine Dokumente.",
  [ErrCode.NotFound]: "Es gibt keine Organisation mit dieser Kennung.",
  [ErrCode.IdempotencyMismatch]: "Eine Datei mit demselben Namen, derselben Größe und demselben Zeitstempel, aber anderem Inhalt wurde bereits angenommen.",
  [ErrCode.InvalidInput]: "Die Angaben zur Datei sind ungültig (z. B. die Beschreibungsdatei .kuvert.json).",
  [DocumentErr.FormatVersion]: "Die Beschreibungsdatei (.kuvert.json) hat eine Formatversion, die dieses Kuvert nicht kennt.",
  [DocumentErr.AlreadyReplaced]: "Das Dokument, das diese Datei ersetzen soll, wurde bereits durch eine neuere Version ersetzt.",
  [DocumentErr.NotDelivered]: "Das Dokument, das diese Datei ersetzen soll, wurde nie zugestellt; nur zugestellte Dokumente können ersetzt werden.",
  [DocumentErr.OtherOrganisation]: "Das Dokument, das diese Datei ersetzen soll, gehört zu einer anderen Organisation.",
  [DocumentErr.ReferenceAmbiguous]: "Mehrere aktuelle Dokumente haben dieses Aktenzeichen; nennen Sie das zu ersetzende Dokument mit seiner Kennung (supersedes).",
};

function refusal(err: KuvertError): Reason {
  return { de: germanReasons[err.errcode] ?? "Kuvert hat die Datei abgelehnt.", en: err.message, errcode: err.errcode };
}

/** Errors that say "try again later", not "this file is wrong". */
function isTransient(err: unknown): boolean {
  return !(err instanceof KuvertError) || err.errcode === ErrCode.Unavailable || err.errcode === ErrCode.Internal;
}

function sameVersion(a: { size: number; mtimeMs: number; ino: number }, b: Stats): boolean {
  return a.size === b.size && a.mtimeMs === b.mtimeMs && a.ino === b.ino;
}

/** An error for the log: file system errors name a path (and so a file name), so only their code is kept. */
function safeError(err: unknown): Record<string, unknown> {
  if (!(err instanceof Error)) return { type: typeof err };
  const sys = err as NodeJS.ErrnoException;
  if (sys.syscall || sys.path) return { type: err.name, code: sys.code, syscall: sys.syscall };
  return { type: err.name, code: sys.code, message: err.message };
}

function errorCode(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

/** Shortens a name (by bytes, keeping the extension) so that `name + extra` fits in 255 bytes. */
function fitName(name: string, extra: number): string {
  if (Buffer.byteLength(name) + extra <= 255) return name;
  const ext = extname(name).length <= 16 ? extname(name) : "";
  let base = name.slice(0, name.length - ext.length);
  while (base.length > 0 && Buffer.byteLength(base) + Buffer.byteLength(ext) + extra > 255) base = base.slice(0, -1);
  return `${base}${ext}`;
}

export class DropFolder {
  readonly #config: KuvertConfig;
  readonly #intake: DocumentIntake;
  readonly #staffRoom: Pick<StaffRoom, "post">;
  readonly #knownOrganisation: (id: string) => Promise<boolean>;
  readonly #dir: string;
  readonly #observed = new Map<string, Observation>();
  /** Things already logged as ignored (by path and kind), so each is logged once. */
  readonly #reported = new Set<string>();
  /** Passes run one after another, whether from the poller or from scanOnce(). */
  #chain: Promise<unknown> = Promise.resolve();
  #timer: NodeJS.Timeout | undefined;
  #running = false;
  #stopped = false;
  /** Which start() a scheduled pass belongs to: a pass of an earlier start schedules no more. */
  #generation = 0;

  constructor(config: KuvertConfig, intake: DocumentIntake, staffRoom: Pick<StaffRoom, "post">, knownOrganisation: (id: string) => Promise<boolean>) {
    this.#config = config;
    this.#intake = intake;
    this.#staffRoom = staffRoom;
    this.#knownOrganisation = knownOrganisation;
    this.#dir = resolve(config.documents.dropFolder.dir);
  }

  get dir(): string {
    return this.#dir;
  }

  /** Starts polling (when documents.dropFolder.enabled); the first pass runs at once. */
  async start(): Promise<void> {
    if (!this.#config.documents.dropFolder.enabled) {
      log.debug("the drop folder is not enabled");
      return;
    }
    if (this.#running) return;
    await mkdir(this.#dir, { recursive: true, mode: 0o770 });
    this.#running = true;
    this.#stopped = false;
    this.#generation += 1;
    log.info({ pollSeconds: this.#config.documents.dropFolder.pollSeconds, stableSeconds: this.#config.documents.dropFolder.stableSeconds }, "watching the drop folder");
    this.#schedule(0, this.#generation);
  }

  /** Stops polling and waits for the pass under way. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#running = false;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#chain.catch(() => undefined);
  }

  /** One pass over the folder (after any pass under way). */
  scanOnce(): Promise<ScanReport> {
    const pass = this.#chain.then(() => this.#pass());
    this.#chain = pass.catch(() => undefined);
    return pass;
  }

  #schedule(delayMs: number, generation: number): void {
    if (this.#stopped || generation !== this.#generation) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.scanOnce()
        .catch((err: unknown) => log.error({ err: safeError(err) }, "a drop folder pass failed; trying again"))
        .finally(() => this.#schedule(this.#config.documents.dropFolder.pollSeconds * 1000, generation));
    }, delayMs);
  }

  async #pass(): Promise<ScanReport> {
    const report: ScanReport = { taken: 0, unroutable: 0, waiting: 0 };
    const seen = new Set<string>();
    let entries;
    try {
      entries = await readdir(this.#dir, { withFileTypes: true });
    } catch (err) {
      if (errorCode(err) === "ENOENT") {
        this.#once(`missing:${this.#dir}`, () => log.warn("the drop folder does not exist (yet)"));
        return report;
      }
      throw err;
    }
    for (const entry of entries) {
      if (entry.name === UNROUTABLE && entry.isDirectory()) continue;
      if (!entry.isDirectory()) {
        this.#once(`top:${entry.name}`, () => log.warn({ kind: kindOf(entry) }, "an entry directly in the drop folder is ignored: files go into a folder named after the organisation id"));
        continue;
      }
      await this.#scanOrganisationFolder(entry.name, report, seen);
    }
    for (const path of this.#observed.keys()) if (!seen.has(path)) this.#observed.delete(path);
    if (report.taken + report.unroutable > 0) log.info({ ...report }, "drop folder pass");
    else log.debug({ ...report }, "drop folder pass");
    return report;
  }

  async #scanOrganisationFolder(folder: string, report: ScanReport, seen: Set<string>): Promise<void> {
    const folderPath = join(this.#dir, folder);
    let entries;
    try {
      entries = await readdir(folderPath, { withFileTypes: true });
    } catch (err) {
      if (errorCode(err) === "ENOENT" || errorCode(err) === "ENOTDIR") return;
      throw err;
    }
    // Whether the folder names an organisation: asked once per pass, and only when a file is ready.
    let known: Promise<boolean> | undefined;
    const organisationKnown = () => (known ??= slugPattern.test(folder) ? this.#knownOrganisation(folder) : Promise.resolve(false));

    for (const entry of entries) {
      const path = join(folderPath, entry.name);
      if (entry.isSymbolicLink()) {
        await this.#moveUnroutable(
          folder,
          entry.name,
          {
            de: "Die Datei ist ein symbolischer Link; Kuvert folgt keinen Links. Legen Sie die Datei selbst in den Ordner.",
            en: "The file is a symbolic link; Kuvert does not follow links. Put the file itself into the folder.",
          },
          report,
        );
        continue;
      }
      if (entry.isDirectory()) {
        this.#once(`dir:${path}`, () => log.warn({ organisationId: folder }, "a folder inside an organisation folder is ignored"));
        continue;
      }
      if (!entry.isFile()) {
        this.#once(`special:${path}`, () => log.warn({ organisationId: folder, kind: kindOf(entry) }, "a special file in an organisation folder is ignored"));
        continue;
      }
      if (isDescriptionName(entry.name)) continue;
      if (isTemporaryName(entry.name)) {
        report.waiting += 1;
        continue;
      }
      seen.add(path);
      const stat = await lstat(path).catch((err: unknown) => {
        if (errorCode(err) === "ENOENT") return undefined;
        throw err;
      });
      if (!stat) continue;
      if (!stat.isFile()) {
        // Changed between listing and looking: the next pass sees what it is now.
        report.waiting += 1;
        continue;
      }
      if (!this.#stable(path, stat)) {
        report.waiting += 1;
        continue;
      }

      let isKnown: boolean;
      try {
        isKnown = await organisationKnown();
      } catch (err) {
        known = undefined;
        this.#transient(path, err, folder);
        report.waiting += 1;
        continue;
      }
      if (!isKnown) {
        const valid = slugPattern.test(folder);
        await this.#moveUnroutable(
          folder,
          entry.name,
          {
            de: valid ? `Es gibt keine Organisation mit der Kennung „${folder}“. Kuvert stellt nur an Organisationen zu, deren Kennung genau der Ordnername ist.` : `Der Ordnername „${folder}“ ist keine gültige Organisationskennung (Kleinbuchstaben, Ziffern und Bindestriche).`,
            en: valid ? `There is no organisation with the id "${folder}". Kuvert delivers only to the organisation whose id is exactly the folder name.` : `The folder name "${folder}" is not a valid organisation id (lower-case letters, digits and hyphens).`,
            errcode: ErrCode.NotFound,
          },
          report,
        );
        continue;
      }
      await this.#take(folder, entry.name, path, stat, report);
    }
  }

  /** Whether the file has kept its size, mtime and inode for stableSeconds (watched across passes). */
  #stable(path: string, stat: Stats): boolean {
    const now = performance.now();
    const seen = this.#observed.get(path);
    if (!seen || !sameVersion(seen, stat)) {
      this.#observed.set(path, { size: stat.size, mtimeMs: stat.mtimeMs, ino: stat.ino, since: now });
      return false;
    }
    return now - seen.since >= this.#config.documents.dropFolder.stableSeconds * 1000;
  }

  async #take(organisationId: string, filename: string, path: string, stat: Stats, report: ScanReport): Promise<void> {
    let handle: FileHandle;
    try {
      // O_NOFOLLOW: a file swapped for a link after it was looked at is not followed;
      // O_NONBLOCK: one swapped for a FIFO does not hang the pass.
      handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    } catch (err) {
      if (errorCode(err) === "ENOENT") return;
      if (errorCode(err) === "ELOOP") {
        report.waiting += 1; // it became a link: the next pass moves it aside
        return;
      }
      this.#transient(path, err, organisationId);
      report.waiting += 1;
      return;
    }
    const opened = await handle.stat().catch(() => undefined);
    if (!opened || !opened.isFile() || !sameVersion({ size: stat.size, mtimeMs: stat.mtimeMs, ino: stat.ino }, opened)) {
      await handle.close().catch(() => undefined);
      this.#observed.delete(path);
      report.waiting += 1;
      return;
    }
    // Exactly the bytes of the stable version: what the key names is what is accepted.
    const content: Readable = stat.size > 0 ? handle.createReadStream({ start: 0, end: stat.size - 1, autoClose: true }) : Readable.from([]);
    if (stat.size === 0) await handle.close().catch(() => undefined);

    let accepted;
    try {
      const description = await readDescription(path);
      accepted = await this.#intake.accept({
        organisationId,
        filename,
        kind: description?.kind,
        reference: description?.reference,
        supersedes: description?.supersedes ?? null,
        source: "folder",
        submittedBy: `folder:${organisationId}`,
        idempotency: { scope: "folder", key: dropIdempotencyKey(organisationId, filename, stat) },
        content,
      });
    } catch (err) {
      if (isTransient(err)) {
        this.#transient(path, err, organisationId);
        report.waiting += 1;
        return;
      }
      const kuvertError = err as KuvertError;
      log.info({ organisationId, errcode: kuvertError.errcode }, "a dropped file was refused");
      await this.#moveUnroutable(organisationId, filename, refusal(kuvertError), report);
      return;
    } finally {
      content.destroy();
    }

    // Accepted: in the database and in staging. Only now may it leave the folder — and only
    // if it is still the version that was accepted (a writer that went on after a long pause
    // made a new version, which the next passes take once it is stable).
    const now = await lstat(path).catch(() => undefined);
    this.#observed.delete(path);
    if (now && now.isFile() && sameVersion({ size: stat.size, mtimeMs: stat.mtimeMs, ino: stat.ino }, now)) {
      await unlink(path).catch((err: unknown) => {
        if (errorCode(err) !== "ENOENT") throw err;
      });
      await rm(`${path}${DESCRIPTION_SUFFIX}`, { force: true });
    } else if (now) {
      log.warn({ organisationId, documentId: accepted.document.id }, "a dropped file changed after it was accepted; the new version is left for a later pass");
    }
    log.info({ organisationId, documentId: accepted.document.id, replayed: accepted.replayed }, "document taken from the drop folder");
    report.taken += 1;
  }

  /** Logs a transient failure once per file and error, and leaves the file for the next pass. */
  #transient(path: string, err: unknown, organisationId: string): void {
    const seen = this.#observed.get(path);
    const message = (err as Error)?.message ?? String(err);
    if (seen?.lastError === message) return;
    if (seen) seen.lastError = message;
    log.warn({ organisationId, err: safeError(err) }, "a dropped file could not be taken now; trying again on the next pass");
  }

  /** Moves a file to unroutable/; when that fails (e.g. no permission), the file stays for the next pass. */
  async #moveUnroutable(folder: string, name: string, reason: Reason, report: ScanReport): Promise<void> {
    try {
      await this.#moveAside(folder, name, reason, report);
    } catch (err) {
      this.#transient(join(this.#dir, folder, name), err, folder);
      report.waiting += 1;
    }
  }

  /** Moves a file to unroutable/<folder>/, never overwriting, with the reason beside it, and alerts staff. */
  async #moveAside(folder: string, name: string, reason: Reason, report: ScanReport): Promise<void> {
    const source = join(this.#dir, folder, name);
    const targetDir = join(this.#dir, UNROUTABLE, folder);
    await mkdir(targetDir, { recursive: true, mode: 0o770 });
    const suffix = ".reason.txt";
    const fitted = fitName(name, Buffer.byteLength(suffix) + 8);
    const ext = extname(fitted);
    const base = fitted.slice(0, fitted.length - ext.length);
    let target: string | undefined;
    for (let n = 0; n < 10_000 && !target; n++) {
      const candidate = join(targetDir, n === 0 ? fitted : `${base}-${n}${ext}`);
      if (await exists(`${candidate}${suffix}`)) continue;
      try {
        // A hard link claims the name atomically (no other worker's file is overwritten); the
        // source goes only after the reason is written, so a crash leaves a copy, not a loss.
        await link(source, candidate);
        target = candidate;
      } catch (err) {
        const code = errorCode(err);
        if (code === "EEXIST") continue;
        if (code === "ENOENT") return; // already gone: another worker moved or took it
        // No hard links here (some network shares): check, then rename.
        if (await exists(candidate)) continue;
        try {
          await rename(source, candidate);
          target = candidate;
        } catch (renameErr) {
          if (errorCode(renameErr) === "ENOENT") return;
          throw renameErr;
        }
      }
    }
    if (!target) throw new Error("no free name in the unroutable folder");
    const relative = target.slice(this.#dir.length + 1);
    const text = [
      "Kuvert hat diese Datei nicht zugestellt. / Kuvert did not deliver this file.",
      "",
      `Datei / File: ${name}`,
      `Ordner / Folder: ${folder}`,
      `Zeit / Time: ${new Date().toISOString()}`,
      ...(reason.errcode ? [`Fehlercode / Error code: ${reason.errcode}`] : []),
      "",
      `Grund: ${reason.de}`,
      `Reason: ${reason.en}`,
      "",
      "Die Datei wurde nicht weitergegeben. Beheben Sie den Grund und legen Sie sie erneut in den Ordner der Organisation.",
      "The file was not passed on. Fix the reason and drop it again into the organisation's folder.",
      "",
    ].join("\n");
    // Written aside and renamed, so whoever sees the reason file sees all of it.
    await writeFile(`${target}${suffix}.part`, text, { mode: 0o660 });
    await rename(`${target}${suffix}.part`, `${target}${suffix}`);
    await rm(source, { force: true });
    this.#observed.delete(source);
    report.unroutable += 1;
    log.warn({ reason: reason.errcode ?? "symlink" }, "a dropped file was moved to the unroutable folder");

    const english = this.#config.organisations.language === "en";
    const body = english ? `Drop folder: "${name}" in folder ${folder} was not delivered and moved to ${relative}: ${reason.en}` : `Ablageordner: „${name}“ im Ordner ${folder} wurde nicht zugestellt und nach ${relative} verschoben: ${reason.de}`;
    void this.#staffRoom.post({ key: `unroutable:${relative}`, body }).catch((err: unknown) => log.warn({ err: safeError(err) }, "the staff alert about an unroutable file could not be posted"));
  }

  #once(key: string, write: () => void): void {
    if (this.#reported.has(key)) return;
    if (this.#reported.size > 10_000) this.#reported.clear();
    this.#reported.add(key);
    write();
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch (err) {
    if (errorCode(err) === "ENOENT") return false;
    throw err;
  }
}

function kindOf(entry: { isFile(): boolean; isDirectory(): boolean; isSymbolicLink(): boolean }): string {
  if (entry.isSymbolicLink()) return "symlink";
  if (entry.isFile()) return "file";
  if (entry.isDirectory()) return "directory";
  return "special";
}
