// The benchmark's documents: a fixed, seeded set of sizes, and for each document the same
// bytes every time they are asked for, made as a stream (never held whole in memory).
// Content: a PDF header (so Kuvert's content sniffing says application/pdf and the type
// check passes), then an AES-256-CTR keystream: incompressible, and cheap enough (GB/s with
// AES-NI) that making the bytes costs little next to moving them.
import { createCipheriv, createHash } from "node:crypto";
import { Readable } from "node:stream";

const KB = 1000;
const MB = 1000 * 1000;

export const pdfHeader = Buffer.from("%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "latin1");
const chunkBytes = 256 * 1024;
const zeros = Buffer.alloc(chunkBytes);

/** Bytes of document `name` (the key of its keystream), `size` long, in chunks of 256 KiB. */
export function* documentChunks(name: string, size: number): Generator<Buffer> {
  const digest = createHash("sha256").update(`kuvert-bench:${name}`).digest();
  const cipher = createCipheriv("aes-256-ctr", digest, Buffer.alloc(16));
  const head = pdfHeader.subarray(0, Math.min(size, pdfHeader.length));
  let left = size - head.length;
  // The first chunk carries the header, so it is not a chunk of its own.
  const firstRandom = Math.min(left, chunkBytes - head.length);
  yield Buffer.concat([head, cipher.update(zeros.subarray(0, firstRandom))]);
  left -= firstRandom;
  while (left > 0) {
    const n = Math.min(left, chunkBytes);
    yield cipher.update(n === chunkBytes ? zeros : zeros.subarray(0, n));
    left -= n;
  }
}

/** The document as a Node stream (for ClamdScanner). */
export function documentStream(name: string, size: number): Readable {
  return Readable.from(documentChunks(name, size), { objectMode: false, highWaterMark: chunkBytes });
}

/** mulberry32: a small seeded PRNG, so the set of sizes is the same on every run. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface PlannedDocument {
  index: number;
  name: string;
  size: number;
  organisation: string;
  bucket: "small" | "medium" | "large";
}

/** Size buckets: share of the documents and the range (log-uniform within the range). */
export const buckets = [
  { bucket: "small", share: 0.7, min: 1 * KB, max: 100 * KB },
  { bucket: "medium", share: 0.25, min: 100 * KB, max: 2 * MB },
  { bucket: "large", share: 0.05, min: 2 * MB, max: 20 * MB },
] as const;

/**
 * The mixed set: exactly 70 % / 25 % / 5 % of `count` in the three buckets (the last takes
 * the rounding), sizes log-uniform within each bucket, order shuffled, organisations dealt
 * round robin. Same seed, same set.
 */
export function mixedSet(count: number, organisations: string[], seed = 20260101): PlannedDocument[] {
  const random = seededRandom(seed);
  const kinds: (typeof buckets)[number][] = [];
  let assigned = 0;
  buckets.forEach((b, i) => {
    const n = i === buckets.length - 1 ? count - assigned : Math.round(count * b.share);
    for (let k = 0; k < n; k++) kinds.push(b);
    assigned += n;
  });
  // Fisher–Yates with the seeded generator.
  for (let i = kinds.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [kinds[i], kinds[j]] = [kinds[j]!, kinds[i]!];
  }
  return kinds.map((b, index) => {
    const size = Math.round(Math.exp(Math.log(b.min) + random() * (Math.log(b.max) - Math.log(b.min))));
    return { index, name: `mixed-${seed}-${index}`, size, organisation: organisations[index % organisations.length]!, bucket: b.bucket };
  });
}
