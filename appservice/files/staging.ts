// The staging area: documents wait here, by id, between arrival and delivery. Every Kuvert process
// that shares the database must reach the same staging store, so any process can finish any work:
// a directory they all mount (DirectoryStaging, the default) or a bucket of an S3-compatible object
// store (S3Staging in staging-s3.ts). Both stream: nothing is held whole in memory.
import { createHash } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, open, readdir, rename, rm, stat, unlink } from "node:fs/promises";
import { join } from "node:path";
import { Transform, type Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { fileTypeFromBuffer } from "file-type";
import { ErrCode, KuvertError } from "../errors.ts";
import { contentType } from "./content.ts";

// Large buffers for staged files: the default 16/64 KiB make a 1 GiB document thousands of small
// writes and reads (measured 1.4–2.4× slower, bench/README.md).
export const BUFFER = 1024 * 1024;
/** How many first bytes decide a file's type (sniff). */
const HEAD_BYTES = 8192;

/** Chunks on their way into staging, for a reader beside the store (the scanner, while a document arrives), with its backpressure. */
export interface ChunkTap {
  /** Undefined when the chunk was taken at once; otherwise wait for it before sending more. */
  write(chunk: Buffer): Promise<void> | undefined;
  /** All chunks were written. */
  end(): void;
  /** The upload failed: the scan stops. */
  abort(): void;
}

export interface StagedFile {
  size: number;
  sha256: string;
  mimetype: string;
  /** The first bytes (up to 8 KiB): what decided the type, and what tells an archive from a plain file. */
  head: Buffer;
}

/** A file in the staging store, as retention's orphan sweep sees it. */
export interface StagingEntry {
  name: string;
  modified: Date;
}

export interface Staging {
  init(): Promise<void>;
  /**
   * Streams `input` into staging as document `id`, refusing more than `maxBytes` and empty files.
   * Every chunk also goes to `tap` (the scan while receiving), which is ended when all bytes are
   * written and aborted when staging fails. Resolves once the file is durably stored.
   */
  write(id: string, input: Readable, maxBytes: number, tap?: ChunkTap): Promise<StagedFile>;
  /** The staged file as a stream. */
  read(id: string): Readable;
  /**
   * Runs `use` with a local path of the staged file, for what needs one: clamd's archive policy,
   * a ZIP's random access, an upload that may be retried. The path is valid only during `use`.
   */
  local<T>(id: string, use: (path: string) => Promise<T>): Promise<T>;
  /** Deletes the staged file (not moved aside: gone). */
  destroy(id: string): Promise<void>;
  /** Everything in the store, for retention's orphan sweep; `remove` takes a name it listed. */
  entries(): AsyncIterable<StagingEntry>;
  remove(name: string): Promise<void>;
  /** Lets go of connections; the store's files stay. */
  close(): Promise<void>;
}

/**
 * A stream stage that counts, hashes and keeps the first bytes of what passes, refuses more than
 * `maxBytes`, and hands every chunk to `tap` (waiting when the tap asks to). Both stores use it,
 * so limits and hashes mean the same whichever store is configured.
 */
export function countingStage(maxBytes: number, tap?: ChunkTap): { stage: Transform; result(): { size: number; sha256: string; head: Buffer } } {
  const hash = createHash("sha256");
  const head: Buffer[] = [];
  let headLength = 0;
  let size = 0;
  const stage = new Transform({
    transform(chunk: Buffer, _enc, done) {
      size += chunk.length;
      if (size > maxBytes) return done(new KuvertError(ErrCode.TooLarge, `The document is larger than the ${maxBytes} bytes Kuvert accepts.`));
      hash.update(chunk);
      if (headLength < HEAD_BYTES) {
        const part = chunk.subarray(0, HEAD_BYTES - headLength);
        head.push(Buffer.from(part));
        headLength += part.length;
      }
      const wait = tap?.write(chunk);
      if (wait) wait.then(() => done(null, chunk), done);
      else done(null, chunk);
    },
  });
  return { stage, result: () => ({ size, sha256: hash.digest("hex"), head: Buffer.concat(head) }) };
}

/** Staging in a directory: a file is written in full, hashed, flushed to disk and only then renamed into place. */
export class DirectoryStaging implements Staging {
  readonly dir: string;
  constructor(dir: string) {
    this.dir = dir;
  }

  async init(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
  }

  path(id: string): string {
    return join(this.dir, id);
  }

  async write(id: string, input: Readable, maxBytes: number, tap?: ChunkTap): Promise<StagedFile> {
    const partial = `${this.path(id)}.part`;
    const counting = countingStage(maxBytes, tap);
    try {
      await pipeline(input, counting.stage, createWriteStream(partial, { mode: 0o600, highWaterMark: BUFFER }));
      tap?.end();
      const { size, sha256, head } = counting.result();
      if (size === 0) throw new KuvertError(ErrCode.EmptyFile, "The document is empty.");
      const handle = await open(partial, "r");
      try {
        // Flushed before it counts as accepted: a crash after the answer must not lose it.
        await handle.sync();
      } finally {
        await handle.close();
      }
      const mimetype = await sniff(head, size);
      await rename(partial, this.path(id));
      return { size, sha256, mimetype, head };
    } catch (err) {
      tap?.abort();
      input.resume();
      await rm(partial, { force: true });
      throw err;
    }
  }

  read(id: string): Readable {
    return createReadStream(this.path(id), { highWaterMark: BUFFER });
  }

  local<T>(id: string, use: (path: string) => Promise<T>): Promise<T> {
    return use(this.path(id));
  }

  async destroy(id: string): Promise<void> {
    // unlink, not rm: one system call per name instead of a stat first (every delivery ends here).
    await unlinkIfThere(this.path(id));
    await unlinkIfThere(`${this.path(id)}.part`);
  }

  async *entries(): AsyncIterable<StagingEntry> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch {
      return;
    }
    for (const name of names) {
      const info = await stat(join(this.dir, name)).catch(() => null);
      if (info?.isFile()) yield { name, modified: info.mtime };
    }
  }

  async remove(name: string): Promise<void> {
    await rm(join(this.dir, name), { force: true });
  }

  async close(): Promise<void> {}
}

async function unlinkIfThere(path: string): Promise<void> {
  await unlink(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== "ENOENT") throw err;
  });
}

/**
 * The type of a file from its first bytes; text that has no signature is text/plain, unless it
 * holds markup a browser would run (then text/html or image/svg+xml, see content.ts).
 */
export async function sniff(head: Buffer, size: number): Promise<string> {
  const detected = await fileTypeFromBuffer(head);
  if (detected) return contentType(detected.mime, head);
  const sample = size > head.length ? head.subarray(0, Math.max(0, head.length - 4)) : head;
  if (!sample.includes(0) && isUtf8(sample)) return contentType("text/plain", head);
  return "application/octet-stream";
}

function isUtf8(bytes: Buffer): boolean {
  try {
    new TextDecoder("utf-8", { fatal: true }).decode(bytes);
    return true;
  } catch {
    return false;
  }
}
