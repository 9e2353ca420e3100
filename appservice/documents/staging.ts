// The staging area: documents wait here, by id, between arrival and delivery. A file is
// written in full, hashed, flushed to disk and only then renamed into place.
import { createHash } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, open, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { Transform, type Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { fileTypeFromBuffer } from "file-type";

// Large buffers for staged files: the default 16/64 KiB make a 1 GiB document thousands of small
// writes and reads (measured 1.4–2.4× slower, bench/README.md).
const BUFFER = 1024 * 1024;
import { ErrCode, KuvertError } from "../errors.ts";
import { contentType } from "./content.ts";
import type { ChunkTap } from "./prescan.ts";

export interface StagedFile {
  path: string;
  size: number;
  sha256: string;
  mimetype: string;
}

export class Staging {
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

  /**
   * Streams `input` into staging as document `id`, refusing more than `maxBytes` and empty files.
   * Every chunk also goes to `tap` (the scan while receiving), which is ended when all bytes are
   * written and aborted when staging fails.
   */
  async write(id: string, input: Readable, maxBytes: number, tap?: ChunkTap): Promise<StagedFile> {
    const partial = `${this.path(id)}.part`;
    const hash = createHash("sha256");
    let size = 0;
    const counter = new Transform({
      transform(chunk: Buffer, _enc, done) {
        size += chunk.length;
        if (size > maxBytes) return done(new KuvertError(ErrCode.TooLarge, `The document is larger than the ${maxBytes} bytes Kuvert accepts.`));
        hash.update(chunk);
        const wait = tap?.write(chunk);
        if (wait) wait.then(() => done(null, chunk), done);
        else done(null, chunk);
      },
    });
    try {
      await pipeline(input, counter, createWriteStream(partial, { mode: 0o600, highWaterMark: BUFFER }));
      tap?.end();
      if (size === 0) throw new KuvertError(ErrCode.EmptyFile, "The document is empty.");
      const handle = await open(partial, "r");
      let head: Buffer;
      try {
        // Flushed before it counts as accepted: a crash after the answer must not lose it.
        await handle.sync();
        head = Buffer.alloc(Math.min(size, 8192));
        await handle.read(head, 0, head.length, 0);
      } finally {
        await handle.close();
      }
      const mimetype = await sniff(head, size);
      await rename(partial, this.path(id));
      return { path: this.path(id), size, sha256: hash.digest("hex"), mimetype };
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

  /** Deletes the staged file (not moved aside: gone). */
  async destroy(id: string): Promise<void> {
    await rm(this.path(id), { force: true });
    await rm(`${this.path(id)}.part`, { force: true });
  }
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
