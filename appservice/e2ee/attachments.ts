// Encrypted attachments (CS API §"Sending encrypted attachments"): the file is AES-256-CTR
// encrypted with a fresh key, uploaded, and the event carries `file: {url, key (a JWK), iv,
// hashes: {sha256}, v}`; the SHA-256 is of the ciphertext. Both ways are streamed: the
// ciphertext is hashed while it is made or decrypted, and decrypted plaintext counts only when
// the hash matched at the end. The cipher is Node's; test/unit/e2ee-attachments.test.ts shows
// that the crypto Element uses (matrix-sdk-crypto-wasm) reads what this writes, and back.
import { createCipheriv, createDecipheriv, createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { Transform, type Readable } from "node:stream";

/** The attachment cannot be decrypted (missing or malformed key, IV or hash; unknown version or algorithm). */
export class UndecryptableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UndecryptableError";
  }
}

export interface EncryptedFile {
  url: string;
  key: { kty: "oct"; key_ops: string[]; alg: "A256CTR"; k: string; ext: true };
  iv: string;
  hashes: { sha256: string };
  v: "v2";
}

export interface AttachmentSecrets {
  url: string;
  key: Buffer;
  iv: Buffer;
  sha256: Buffer;
}

// Unpadded base64 (the spec's encoding), URL-safe base64 (the JWK's `k`), or padded.
const base64 = /^[A-Za-z0-9+/_-]+={0,2}$/;

function decode(value: unknown, what: string, bytes: number): Buffer {
  if (typeof value !== "string" || !base64.test(value)) throw new UndecryptableError(`${what} is missing or not base64`);
  const decoded = Buffer.from(value.replace(/-/g, "+").replace(/_/g, "/"), "base64");
  if (decoded.length !== bytes) throw new UndecryptableError(`${what} has ${decoded.length} bytes, not ${bytes}`);
  return decoded;
}

function record(value: unknown): Record<string, unknown> | undefined {
  return typeof value === "object" && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
}

/**
 * Reads the `file` object of an event. Versions v1 and v2 differ only in how much of the IV
 * the sender randomised; Node's 128-bit counter decrypts both. Throws UndecryptableError.
 */
export function readEncryptedFile(file: unknown): AttachmentSecrets {
  const f = record(file);
  if (!f) throw new UndecryptableError("the attachment is not an object");
  if (typeof f.url !== "string") throw new UndecryptableError("the attachment has no url");
  if (f.v !== undefined && f.v !== "v1" && f.v !== "v2") throw new UndecryptableError(`attachment version ${JSON.stringify(f.v)} is not known`);
  const jwk = record(f.key);
  if (!jwk) throw new UndecryptableError("the attachment has no key");
  if (jwk.kty !== "oct" || jwk.alg !== "A256CTR") throw new UndecryptableError("the key is not an AES-256-CTR key (kty oct, alg A256CTR)");
  if (Array.isArray(jwk.key_ops) && !jwk.key_ops.includes("decrypt")) throw new UndecryptableError("the key may not be used to decrypt");
  const hashes = record(f.hashes);
  return { url: f.url, key: decode(jwk.k, "the key", 32), iv: decode(f.iv, "the IV", 16), sha256: decode(hashes?.sha256, "the SHA-256 hash", 32) };
}

/** Whether the ciphertext matched its hash: known once the whole ciphertext went through. */
export type Integrity = "intact" | "corrupt" | "incomplete";

/**
 * Decrypts `ciphertext` as it streams. `integrity()` says, after the plaintext has been read
 * to its end, whether the ciphertext had the SHA-256 the event promised; until then (or when
 * reading stopped early) it is "incomplete". Plaintext is only to be trusted when "intact".
 */
export function decryptAttachment(ciphertext: Readable, secrets: AttachmentSecrets): { plaintext: Readable; integrity: () => Integrity } {
  const decipher = createDecipheriv("aes-256-ctr", secrets.key, secrets.iv);
  const hash = createHash("sha256");
  let integrity: Integrity = "incomplete";
  const plaintext = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      hash.update(chunk);
      done(null, decipher.update(chunk));
    },
    flush(done) {
      integrity = timingSafeEqual(hash.digest(), secrets.sha256) ? "intact" : "corrupt";
      done(null, decipher.final());
    },
  });
  ciphertext.once("error", (err) => plaintext.destroy(err));
  plaintext.once("close", () => {
    if (!ciphertext.destroyed && integrity === "incomplete") ciphertext.destroy();
  });
  ciphertext.pipe(plaintext);
  return { plaintext, integrity: () => integrity };
}

function unpadded(buffer: Buffer): string {
  return buffer.toString("base64").replace(/=+$/, "");
}

/** A key and IV for one attachment. */
export interface AttachmentKey {
  key: Buffer;
  iv: Buffer;
}

/** A fresh key and IV as Element makes them (v2: a random 64-bit IV prefix, the counter half zero). */
export function freshSecrets(): AttachmentKey {
  return { key: randomBytes(32), iv: Buffer.concat([randomBytes(8), Buffer.alloc(8)]) };
}

/** The event's `file` object without `url`, for a key, IV and the SHA-256 of the ciphertext. */
export function fileObject(key: Buffer, iv: Buffer, sha256: Buffer): Omit<EncryptedFile, "url"> {
  return {
    key: { kty: "oct", key_ops: ["encrypt", "decrypt"], alg: "A256CTR", k: key.toString("base64url"), ext: true },
    iv: unpadded(iv),
    hashes: { sha256: unpadded(sha256) },
    v: "v2",
  };
}

/** Encrypts a file held in memory. Answers the ciphertext and the `file` object without `url`. */
export function encryptAttachment(plaintext: Buffer): { ciphertext: Buffer; file: Omit<EncryptedFile, "url"> } {
  const { key, iv } = freshSecrets();
  const cipher = createCipheriv("aes-256-ctr", key, iv);
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return { ciphertext, file: fileObject(key, iv, createHash("sha256").update(ciphertext).digest()) };
}

/**
 * Encrypts a file as it streams (a document read from staging on its way to the media
 * repository), in constant memory. `file()` answers the `file` object without `url` once the
 * ciphertext has been read to its end (its SHA-256 is known only then); before, it throws. With
 * `secrets` recorded before, the same plaintext always gives the same ciphertext (a retried upload).
 */
export function encryptAttachmentStream(plaintext: Readable, secrets: AttachmentKey = freshSecrets()): { ciphertext: Readable; file: () => Omit<EncryptedFile, "url"> } {
  const { key, iv } = secrets;
  const cipher = createCipheriv("aes-256-ctr", key, iv);
  const hash = createHash("sha256");
  let sha256: Buffer | undefined;
  const ciphertext = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      const out = cipher.update(chunk);
      hash.update(out);
      done(null, out);
    },
    flush(done) {
      const out = cipher.final();
      hash.update(out);
      sha256 = hash.digest();
      done(null, out);
    },
  });
  plaintext.once("error", (err) => ciphertext.destroy(err));
  ciphertext.once("close", () => {
    if (!plaintext.destroyed && sha256 === undefined) plaintext.destroy();
  });
  plaintext.pipe(ciphertext);
  return {
    ciphertext,
    file: () => {
      if (!sha256) throw new Error("the attachment's ciphertext has not been read to its end yet");
      return fileObject(key, iv, sha256);
    },
  };
}

/** A key and IV recorded as one value (key, then IV: 48 bytes). */
export function splitMediaKey(stored: Buffer): AttachmentKey {
  if (stored.length !== 48) throw new Error(`a recorded attachment key has ${stored.length} bytes, not 48`);
  return { key: stored.subarray(0, 32), iv: stored.subarray(32) };
}

/** The SHA-256 (unpadded base64) of the ciphertext the key and IV make of `plaintext`, without keeping the ciphertext. */
export async function ciphertextSha256(plaintext: Readable, secrets: AttachmentKey): Promise<string> {
  const encrypted = encryptAttachmentStream(plaintext, secrets);
  for await (const _chunk of encrypted.ciphertext) {
    // read to its end: only the hash is wanted
  }
  return encrypted.file().hashes.sha256;
}
