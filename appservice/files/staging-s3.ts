// Staging on an S3-compatible object store, for deployments whose Kuvert processes share no
// directory. The client is AWS's own SDK (@aws-sdk/client-s3, with @aws-sdk/lib-storage's Upload):
// kept by AWS, used against every S3-compatible store (Ceph, MinIO, Swift's s3api, the clouds'),
// and it streams both ways — Upload sends a stream of unknown length as a multipart upload,
// GetObject answers with a stream.
//
// What needs a local file (clamd's archive policy, a ZIP's random access, an upload to the
// homeserver that may be retried) gets one through `local`: the object is streamed into this
// process's cache file, which is removed as soon as `use` is done. A crash can leave a cache file
// behind; retention's orphan sweep removes those (`removeStaleCopies`).
import { randomBytes } from "node:crypto";
import { createWriteStream } from "node:fs";
import { mkdir, readdir, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { PassThrough, type Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { DeleteObjectCommand, GetObjectCommand, ListObjectsV2Command, S3Client } from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import type { S3StagingConfig } from "../config/schema.ts";
import { ErrCode, KuvertError } from "../errors.ts";
import { logger } from "../log.ts";
import { BUFFER, countingStage, sniff, type ChunkTap, type StagedFile, type Staging, type StagingEntry } from "./staging.ts";

// Upload holds at most QUEUE × PART bytes of a document in memory (parts in flight), whatever
// its size. 8 MiB parts are above S3's 5 MiB minimum and keep a 1 GiB document at 128 parts.
const PART = 8 * 1024 * 1024;
const QUEUE = 2;
const log = logger("staging-s3");

export class S3Staging implements Staging {
  readonly #client: S3Client;
  readonly #bucket: string;
  readonly #prefix: string;
  readonly #cacheDir: string;

  /** `prefix`: where this store's objects are in the bucket; `cacheDir`: this host's local copies. */
  constructor(config: S3StagingConfig, prefix: string, cacheDir: string) {
    this.#client = new S3Client({
      ...(config.endpoint ? { endpoint: config.endpoint } : {}),
      region: config.region,
      forcePathStyle: config.forcePathStyle,
      // Without keys in the configuration the SDK's usual sources apply (AWS_* variables, roles).
      ...(config.accessKeyId && config.secretAccessKey ? { credentials: { accessKeyId: config.accessKeyId, secretAccessKey: config.secretAccessKey } } : {}),
      // Checksums only where S3 requires them: many S3-compatible stores do not know the newer
      // checksum headers, and the content's SHA-256 is computed and kept by Kuvert anyway.
      requestChecksumCalculation: "WHEN_REQUIRED",
      responseChecksumValidation: "WHEN_REQUIRED",
    });
    this.#bucket = config.bucket;
    this.#prefix = prefix;
    this.#cacheDir = cacheDir;
  }

  #key(id: string): string {
    return `${this.#prefix}${id}`;
  }

  async init(): Promise<void> {
    await mkdir(this.#cacheDir, { recursive: true, mode: 0o700 });
  }

  async write(id: string, input: Readable, maxBytes: number, tap?: ChunkTap): Promise<StagedFile> {
    const counting = countingStage(maxBytes, tap);
    // An object appears only when its upload completes, and a failed multipart upload is aborted:
    // no half-written object is ever visible under the document's key.
    const upload = new Upload({ client: this.#client, params: { Bucket: this.#bucket, Key: this.#key(id), Body: counting.stage }, partSize: PART, queueSize: QUEUE, leavePartsOnError: false });
    const uploaded = upload.done().catch((err: unknown) => {
      counting.stage.destroy(err instanceof Error ? err : new Error(String(err)));
      throw err;
    });
    const [piped, stored] = await Promise.allSettled([pipeline(input, counting.stage), uploaded]);
    try {
      // The size limit's refusal (from the counting stage) says more than the upload's failure it causes.
      if (piped.status === "rejected") throw piped.reason;
      if (stored.status === "rejected") {
        log.error({ err: stored.reason, id }, "the staging store refused an upload");
        throw new KuvertError(ErrCode.Unavailable, "The staging store could not take the document; please try again later.");
      }
      tap?.end();
      const { size, sha256, head } = counting.result();
      if (size === 0) {
        await this.destroy(id);
        throw new KuvertError(ErrCode.EmptyFile, "The document is empty.");
      }
      return { size, sha256, mimetype: await sniff(head, size), head };
    } catch (err) {
      tap?.abort();
      input.resume();
      throw err;
    }
  }

  read(id: string): Readable {
    const out = new PassThrough({ highWaterMark: BUFFER });
    this.#client
      .send(new GetObjectCommand({ Bucket: this.#bucket, Key: this.#key(id) }))
      .then((answer) => pipeline(answer.Body as Readable, out))
      .catch((err: unknown) => out.destroy(err instanceof Error ? err : new Error(String(err))));
    return out;
  }

  async local<T>(id: string, use: (path: string) => Promise<T>): Promise<T> {
    const path = join(this.#cacheDir, `${id}.${randomBytes(6).toString("hex")}`);
    try {
      await pipeline(this.read(id), createWriteStream(path, { mode: 0o600, highWaterMark: BUFFER }));
      return await use(path);
    } finally {
      await rm(path, { force: true });
    }
  }

  async destroy(id: string): Promise<void> {
    // S3 answers a delete of a missing key with success, like rm --force.
    await this.#client.send(new DeleteObjectCommand({ Bucket: this.#bucket, Key: this.#key(id) }));
  }

  async *entries(): AsyncIterable<StagingEntry> {
    let token: string | undefined;
    do {
      const page = await this.#client.send(new ListObjectsV2Command({ Bucket: this.#bucket, Prefix: this.#prefix, ContinuationToken: token }));
      for (const object of page.Contents ?? []) {
        if (object.Key && object.LastModified) yield { name: object.Key.slice(this.#prefix.length), modified: object.LastModified };
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  async remove(name: string): Promise<void> {
    await this.#client.send(new DeleteObjectCommand({ Bucket: this.#bucket, Key: `${this.#prefix}${name}` }));
  }

  /** Removes local copies older than `olderThan` (a crash left them: a copy is removed right after use otherwise); returns how many. */
  async removeStaleCopies(olderThan: Date): Promise<number> {
    let removed = 0;
    for (const name of await readdir(this.#cacheDir).catch(() => [] as string[])) {
      const path = join(this.#cacheDir, name);
      const info = await stat(path).catch(() => null);
      if (!info?.isFile() || info.mtime >= olderThan) continue;
      await rm(path, { force: true });
      removed++;
    }
    return removed;
  }

  async close(): Promise<void> {
    this.#client.destroy();
  }
}
