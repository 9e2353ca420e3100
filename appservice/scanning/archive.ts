// Kuvert's own archive policy: an archive is delivered only when every member in it was scanned.
// clamd opens archives too, but not all of them (a ZIP64 archive: clamd 1.4 answers OK for EICAR
// in one of 198 bytes), and what it cannot open it passes unless told otherwise. So Kuvert reads
// ZIP archives itself with yauzl (random access through a file descriptor: members are streamed,
// never held whole in memory) and streams each member to clamd, with limits of its own:
//
// - a member that is encrypted (password-protected), or packed with a method other than stored
//   or deflated, cannot be scanned;
// - nesting depth, member count and unpacked size (all levels together), and the compression
//   ratio of each larger member are limited (checked from the central directory before anything
//   is unpacked; yauzl refuses members that unpack to more than they declare);
// - a member that is itself a ZIP is spooled to a scratch file (it needs random access) while it
//   is scanned, then walked the same way; a member in another archive format (gzip, 7z, RAR, …)
//   cannot be walked and is unscannable.
//
// Whatever cannot be scanned is an UnscannableError: not clean, never delivered.
import { randomBytes } from "node:crypto";
import { createWriteStream, type WriteStream } from "node:fs";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { Transform, type Readable, type TransformCallback } from "node:stream";
import yauzl from "yauzl";
import type { KuvertConfig } from "../config/schema.ts";
import { ScannerUnavailableError, TooLargeToScanError, type Scanner, type ScanVerdict, type Unscannable } from "./scanner.ts";

export type ArchiveLimits = KuvertConfig["scanning"]["archives"];

export type UnscannableReason = Unscannable["reason"];

/** What Kuvert cannot scan whole. Counts as not clean: the document is refused (or held for staff). */
export class UnscannableError extends Error {
  readonly errcode = "KUVERT_UNSCANNABLE";
  readonly reason: UnscannableReason;
  constructor(reason: UnscannableReason, message: string) {
    super(message);
    this.name = "UnscannableError";
    this.reason = reason;
  }

  /** As a verdict: not clean, with the reason. */
  verdict(durationMs: number, bytes: number): ScanVerdict {
    const name = this.reason.charAt(0).toUpperCase() + this.reason.slice(1);
    return { clean: false, signature: `Kuvert.Unscannable.${name}`, durationMs, bytes, unscannable: { reason: this.reason, message: this.message } };
  }
}

/** Members smaller than this unpacked are not held to the compression ratio (text compresses well). */
export const ratioGraceBytes = 1024 * 1024;
/** Enough of a file's start to recognise any archive format below (tar's mark is at 257). */
export const headBytes = 512;

const otherArchives: { name: string; test: (head: Buffer) => boolean }[] = [
  { name: "gzip", test: (h) => h[0] === 0x1f && h[1] === 0x8b },
  { name: "bzip2", test: (h) => h.subarray(0, 3).toString("latin1") === "BZh" && h.subarray(4, 10).equals(Buffer.from([0x31, 0x41, 0x59, 0x26, 0x53, 0x59])) },
  { name: "xz", test: (h) => h.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])) },
  { name: "7z", test: (h) => h.subarray(0, 6).equals(Buffer.from([0x37, 0x7a, 0xbc, 0xaf, 0x27, 0x1c])) },
  { name: "RAR", test: (h) => h.subarray(0, 6).toString("latin1") === "Rar!\x1a\x07" },
  { name: "Zstandard", test: (h) => h.subarray(0, 4).equals(Buffer.from([0x28, 0xb5, 0x2f, 0xfd])) },
  { name: "CAB", test: (h) => h.subarray(0, 4).toString("latin1") === "MSCF" },
  { name: "ar", test: (h) => h.subarray(0, 8).toString("latin1") === "!<arch>\n" },
  { name: "tar", test: (h) => h.subarray(257, 262).toString("latin1") === "ustar" },
];

/** What the start of a file says: a ZIP archive, another archive format, or neither. */
export function archiveKind(head: Buffer): { kind: "zip" } | { kind: "other"; format: string } | undefined {
  const sig = head.length >= 4 ? head.readUInt32LE(0) : 0;
  // Local file header; end of central directory (an empty archive); the spanning marker.
  if (sig === 0x04034b50 || sig === 0x06054b50 || sig === 0x08074b50) return { kind: "zip" };
  const other = otherArchives.find((a) => a.test(head));
  return other ? { kind: "other", format: other.name } : undefined;
}

export function otherFormatError(format: string, where: string): UnscannableError {
  return new UnscannableError("format", `${where} is a ${format} archive, which Kuvert does not open to scan each file in it; send the files unpacked or as a ZIP.`);
}

export interface WalkResult {
  /** Members seen (files and folders, all levels). */
  members: number;
  /** Members clamd scanned. */
  scanned: number;
  /** Unpacked bytes scanned. */
  bytes: number;
}

/** What clamd found in a member (or why it could not read it). */
interface Found {
  signature: string;
  member: string;
  unscannable?: Unscannable;
}

interface Walk {
  scanner: Scanner;
  limits: ArchiveLimits;
  /** The largest member clamd takes (scanning.maxStreamBytes). */
  maxMemberBytes: number;
  scratchDir: string;
  tally: WalkResult;
}

/**
 * Walks the ZIP archive at `path`, scanning every member with `scanner`. Answers the clean
 * verdict, or the first member clamd found something in; throws UnscannableError for what
 * cannot be scanned, ScannerUnavailableError when clamd cannot be asked.
 */
export async function walkZip(path: string, opts: { scanner: Scanner; limits: ArchiveLimits; maxMemberBytes: number; scratchDir: string }): Promise<{ verdict: ScanVerdict; walk: WalkResult }> {
  const walk: Walk = { ...opts, tally: { members: 0, scanned: 0, bytes: 0 } };
  const started = performance.now();
  const found = await walkLevel(walk, path, 1, []);
  const durationMs = Math.round((performance.now() - started) * 10) / 10;
  const verdict: ScanVerdict = found ? { clean: false, signature: found.signature, durationMs, bytes: walk.tally.bytes, member: found.member, ...(found.unscannable ? { unscannable: found.unscannable } : {}) } : { clean: true, durationMs, bytes: walk.tally.bytes };
  return { verdict, walk: walk.tally };
}

function openZip(path: string): Promise<yauzl.ZipFile> {
  return new Promise((resolve, reject) => {
    yauzl.open(path, { lazyEntries: true, autoClose: false, validateEntrySizes: true, strictFileNames: false }, (err, zip) => (err ? reject(err) : resolve(zip)));
  });
}

function nextEntry(zip: yauzl.ZipFile): Promise<yauzl.Entry | undefined> {
  return new Promise((resolve, reject) => {
    const cleanup = () => {
      zip.off("entry", onEntry);
      zip.off("end", onEnd);
      zip.off("error", onError);
    };
    const onEntry = (entry: yauzl.Entry) => (cleanup(), resolve(entry));
    const onEnd = () => (cleanup(), resolve(undefined));
    const onError = (err: Error) => (cleanup(), reject(err));
    zip.on("entry", onEntry);
    zip.on("end", onEnd);
    zip.on("error", onError);
    zip.readEntry();
  });
}

const broken = (where: string, err: unknown) => new UnscannableError("broken", `${where} cannot be read as a ZIP archive (${err instanceof Error ? err.message : String(err)}), so not every file in it can be scanned.`);

async function walkLevel(walk: Walk, path: string, depth: number, trail: string[]): Promise<Found | undefined> {
  const where = trail.length === 0 ? "The archive" : `The archive ${JSON.stringify(trail.join(" › "))}`;
  let zip: yauzl.ZipFile;
  try {
    zip = await openZip(path);
  } catch (err) {
    throw broken(where, err);
  }
  const { limits, tally } = walk;
  try {
    if (tally.members + zip.entryCount > limits.maxMembers) {
      throw new UnscannableError("members", `${where} holds more than ${limits.maxMembers} files (archives in it counted together); Kuvert scans no archive that large. Split it into smaller ones.`);
    }
    for (;;) {
      let entry: yauzl.Entry | undefined;
      try {
        entry = await nextEntry(zip);
      } catch (err) {
        throw broken(where, err);
      }
      if (!entry) return undefined;
      tally.members++;
      const name = [...trail, entry.fileName].join(" › ");
      const member = `The file ${JSON.stringify(name)} in the archive`;
      if (entry.isEncrypted()) throw new UnscannableError("encrypted", `${member} is password-protected, so the virus scanner cannot read it. Send it without a password.`);
      if (entry.fileName.endsWith("/") && entry.uncompressedSize === 0) continue;
      if (!entry.canDecodeFileData()) throw new UnscannableError("format", `${member} is packed with a method Kuvert cannot unpack (${entry.compressionMethod}); send it stored or deflated (an ordinary ZIP).`);
      tally.bytes += entry.uncompressedSize;
      if (tally.bytes > limits.maxTotalBytes) {
        throw new UnscannableError("size", `${where} unpacks to more than ${limits.maxTotalBytes} bytes (archives in it counted together); Kuvert scans no archive that large.`);
      }
      if (entry.uncompressedSize > walk.maxMemberBytes) {
        throw new UnscannableError("size", `${member} has ${entry.uncompressedSize} bytes unpacked; the virus scanner takes at most ${walk.maxMemberBytes} bytes per file.`);
      }
      const ratio = entry.uncompressedSize / Math.max(entry.compressedSize, 1);
      if (entry.uncompressedSize > ratioGraceBytes && ratio > limits.maxCompressionRatio) {
        throw new UnscannableError("ratio", `${member} unpacks to ${Math.round(ratio)} times its packed size (at most ${limits.maxCompressionRatio} are accepted): it looks like a zip bomb.`);
      }
      const found = await scanMember(walk, zip, entry, depth, [...trail, entry.fileName], member);
      if (found) return found;
    }
  } finally {
    zip.close();
  }
}

async function scanMember(walk: Walk, zip: yauzl.ZipFile, entry: yauzl.Entry, depth: number, trail: string[], member: string): Promise<Found | undefined> {
  let stream: Readable;
  try {
    stream = await zip.openReadStreamPromise(entry);
  } catch (err) {
    throw broken(member, err);
  }
  const spool = join(walk.scratchDir, `.archive-${randomBytes(8).toString("hex")}`);
  const sniffer = new ArchiveSniffer(member, depth < walk.limits.maxDepth ? spool : undefined, walk.limits.maxDepth);
  stream.on("error", (err) => sniffer.destroy(err instanceof UnscannableError ? err : broken(member, err)));
  stream.pipe(sniffer);
  try {
    let verdict: ScanVerdict;
    try {
      verdict = await walk.scanner.scan(sniffer, entry.uncompressedSize);
    } catch (err) {
      stream.destroy();
      if (err instanceof UnscannableError || err instanceof ScannerUnavailableError) throw err;
      if (err instanceof TooLargeToScanError) throw new UnscannableError("size", `${member} is larger than the virus scanner takes (${err.message})`);
      throw broken(member, err);
    }
    walk.tally.scanned++;
    if (!verdict.clean) return { signature: verdict.signature, member: trail.join(" › "), ...(verdict.unscannable ? { unscannable: verdict.unscannable } : {}) };
    if (sniffer.kind === "zip") {
      await sniffer.spooled();
      return await walkLevel(walk, spool, depth + 1, trail);
    }
    return undefined;
  } finally {
    await sniffer.discard();
    await rm(spool, { force: true });
  }
}

/**
 * Passes a file's bytes on to clamd and looks at its start: another archive format is refused;
 * a ZIP is also written to `spoolPath` (when one more level is allowed) to be walked after the scan.
 */
export class ArchiveSniffer extends Transform {
  kind: "zip" | "plain" | undefined;
  readonly #member: string;
  readonly #spoolPath: string | undefined;
  readonly #maxDepth: number;
  #head: Buffer[] = [];
  #headLength = 0;
  #file: WriteStream | undefined;
  #fileDone: Promise<void> | undefined;

  constructor(member: string, spoolPath: string | undefined, maxDepth: number) {
    super();
    this.#member = member;
    this.#spoolPath = spoolPath;
    this.#maxDepth = maxDepth;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    if (this.kind === undefined) {
      this.#head.push(chunk);
      this.#headLength += chunk.length;
      if (this.#headLength < headBytes) return done();
      return this.#decide(done);
    }
    this.#forward(chunk, done);
  }

  override _flush(done: TransformCallback): void {
    if (this.kind === undefined) {
      const head = Buffer.concat(this.#head);
      const problem = this.#look(head);
      if (problem) return done(problem);
      this.#file?.write(head);
      this.push(head);
    }
    this.#file?.end();
    done();
  }

  #decide(done: TransformCallback): void {
    const head = Buffer.concat(this.#head);
    const problem = this.#look(head);
    if (problem) return done(problem);
    this.#forward(head, done);
  }

  /** Decides what the file is from its start; answers why it cannot be scanned, if so. */
  #look(head: Buffer): UnscannableError | undefined {
    this.#head = [];
    const kind = archiveKind(head);
    if (kind?.kind === "other") return otherFormatError(kind.format, this.#member);
    this.kind = kind?.kind === "zip" ? "zip" : "plain";
    if (this.kind !== "zip") return undefined;
    if (!this.#spoolPath) {
      return new UnscannableError("depth", `${this.#member} is an archive nested more than ${this.#maxDepth} levels deep; Kuvert scans no deeper. Send the files less deeply packed.`);
    }
    const file = createWriteStream(this.#spoolPath, { flags: "wx" });
    this.#file = file;
    this.#fileDone = new Promise((resolve, reject) => {
      file.once("finish", () => resolve());
      file.once("error", reject);
    });
    // The promise is awaited after the scan; until then an error must not go unhandled.
    this.#fileDone.catch(() => undefined);
    return undefined;
  }

  #forward(chunk: Buffer, done: TransformCallback): void {
    if (this.#file && !this.#file.write(chunk)) {
      this.#file.once("drain", () => done(null, chunk));
      return;
    }
    done(null, chunk);
  }

  /** Waits until the spooled copy is complete on disk. */
  async spooled(): Promise<void> {
    await this.#fileDone;
  }

  async discard(): Promise<void> {
    const file = this.#file;
    if (!file || file.closed) return;
    await new Promise<void>((resolve) => {
      file.once("close", () => resolve());
      file.destroy();
    });
  }
}
