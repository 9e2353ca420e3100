// Encrypted attachments (appservice/e2ee/attachments.ts): AES-256-CTR, the SHA-256 of the
// ciphertext checked, streamed both ways; and read by the crypto Element itself uses
// (@matrix-org/matrix-sdk-crypto-wasm's Attachment), and reading what it writes.
import assert from "node:assert/strict";
import { createCipheriv, createHash, randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import { text } from "node:stream/consumers";
import { before, describe, it } from "node:test";
import { Attachment, EncryptedAttachment, initAsync } from "@matrix-org/matrix-sdk-crypto-wasm";
import { decryptAttachment, encryptAttachment, encryptAttachmentStream, readEncryptedFile, UndecryptableError } from "../../appservice/e2ee/attachments.ts";

async function decrypt(ciphertext: Buffer, file: unknown, chunk = 7): Promise<{ plain: string; integrity: string }> {
  const chunks: Buffer[] = [];
  for (let i = 0; i < ciphertext.length; i += chunk) chunks.push(ciphertext.subarray(i, i + chunk));
  const { plaintext, integrity } = decryptAttachment(Readable.from(chunks), readEncryptedFile(file));
  const plain = await text(plaintext);
  return { plain, integrity: integrity() };
}

describe("encrypted attachments", () => {
  it("decrypts what was encrypted as Element does, in chunks of any size", async () => {
    const message = "Antrag auf Zuschuss – 2026 ".repeat(100);
    const { ciphertext, file } = encryptAttachment(Buffer.from(message));
    assert.notEqual(ciphertext.toString(), message);
    for (const chunk of [1, 7, 16, 4096]) assert.deepEqual(await decrypt(ciphertext, { url: "mxc://hs/x", ...file }, chunk), { plain: message, integrity: "intact" });
  });

  it("decrypts a v1 attachment: the whole IV random, its counter carried over all 128 bits", async () => {
    const key = randomBytes(32);
    const iv = randomBytes(16);
    iv.fill(0xff, 8); // the lower 64 bits overflow after the first block: v1 carries into the upper half
    const cipher = createCipheriv("aes-256-ctr", key, iv);
    const ciphertext = Buffer.concat([cipher.update(Buffer.from("x".repeat(100))), cipher.final()]);
    const file = { url: "mxc://hs/x", v: "v1", key: { kty: "oct", alg: "A256CTR", k: key.toString("base64url"), key_ops: ["encrypt", "decrypt"], ext: true }, iv: iv.toString("base64"), hashes: { sha256: createHash("sha256").update(ciphertext).digest("base64") } };
    assert.deepEqual(await decrypt(ciphertext, file), { plain: "x".repeat(100), integrity: "intact" });
  });

  it("says corrupt when the ciphertext does not have the promised hash", async () => {
    const { ciphertext, file } = encryptAttachment(Buffer.from("hello"));
    ciphertext[0]! ^= 1;
    assert.equal((await decrypt(ciphertext, { url: "mxc://hs/x", ...file })).integrity, "corrupt");
    const other = encryptAttachment(Buffer.from("hello"));
    assert.equal((await decrypt(other.ciphertext, { url: "mxc://hs/x", ...other.file, hashes: file.hashes })).integrity, "corrupt");
  });

  it("is incomplete until the plaintext was read to its end", () => {
    const { ciphertext, file } = encryptAttachment(Buffer.from("hello"));
    const { integrity } = decryptAttachment(Readable.from([ciphertext]), readEncryptedFile({ url: "mxc://hs/x", ...file }));
    assert.equal(integrity(), "incomplete");
  });

  it("refuses what cannot be decrypted, saying why", () => {
    const { file } = encryptAttachment(Buffer.from("x"));
    const good = { url: "mxc://hs/x", ...file };
    const cases: [unknown, RegExp][] = [
      [null, /not an object/],
      [{ ...good, url: undefined }, /no url/],
      [{ ...good, v: "v3" }, /version "v3"/],
      [{ ...good, key: undefined }, /no key/],
      [{ ...good, key: { ...file.key, alg: "A128CTR" } }, /AES-256-CTR/],
      [{ ...good, key: { ...file.key, key_ops: ["encrypt"] } }, /may not be used to decrypt/],
      [{ ...good, key: { ...file.key, k: randomBytes(16).toString("base64url") } }, /the key has 16 bytes/],
      [{ ...good, iv: "not base64!" }, /the IV is missing or not base64/],
      [{ ...good, hashes: {} }, /SHA-256 hash is missing/],
    ];
    for (const [value, why] of cases)
      assert.throws(
        () => readEncryptedFile(value),
        (err: unknown) => err instanceof UndecryptableError && why.test(err.message),
        String(why),
      );
  });
});

/** Bytes of every value, so that a counter crossing a block boundary and a 64-bit half shows. */
function sample(length: number): Buffer {
  const bytes = Buffer.alloc(length);
  for (let i = 0; i < length; i++) bytes[i] = (i * 31 + (i >> 8)) & 0xff;
  return bytes;
}

async function encryptStreamed(plaintext: Buffer, chunk: number): Promise<{ ciphertext: Buffer; file: ReturnType<typeof encryptAttachment>["file"] }> {
  const chunks: Buffer[] = [];
  for (let i = 0; i < plaintext.length; i += chunk) chunks.push(plaintext.subarray(i, i + chunk));
  const encrypted = encryptAttachmentStream(Readable.from(chunks));
  assert.throws(() => encrypted.file(), /not been read to its end/, "no hash before the end");
  const out: Buffer[] = [];
  for await (const part of encrypted.ciphertext) out.push(part as Buffer);
  return { ciphertext: Buffer.concat(out), file: encrypted.file() };
}

describe("encrypted attachments, streamed", () => {
  it("encrypts as it streams: same length, a fresh key each time, and decrypts to the same bytes with the hash intact", async () => {
    const plain = sample(100_003);
    for (const chunk of [1_000, 4096, 65_536]) {
      const { ciphertext, file } = await encryptStreamed(plain, chunk);
      assert.equal(ciphertext.length, plain.length);
      const decrypted = decryptAttachment(Readable.from([ciphertext]), readEncryptedFile({ url: "mxc://hs/x", ...file }));
      const back: Buffer[] = [];
      for await (const part of decrypted.plaintext) back.push(part as Buffer);
      assert.deepEqual(Buffer.concat(back), plain, `chunks of ${chunk}`);
      assert.equal(decrypted.integrity(), "intact");
    }
    const a = await encryptStreamed(plain, 4096);
    const b = await encryptStreamed(plain, 4096);
    assert.notEqual(a.file.key.k, b.file.key.k);
    assert.notDeepEqual(a.ciphertext, b.ciphertext);
  });

  it("passes an error of the plaintext on to the ciphertext, and has no hash then", async () => {
    const failing = new Readable({
      read() {
        this.destroy(new Error("staging read failed"));
      },
    });
    const encrypted = encryptAttachmentStream(failing);
    await assert.rejects(async () => {
      for await (const part of encrypted.ciphertext) void part;
    }, /staging read failed/);
    assert.throws(() => encrypted.file(), /not been read to its end/);
  });
});

describe("encrypted attachments and the crypto Element uses", () => {
  before(async () => {
    await initAsync();
  });

  it("matrix-sdk-crypto-wasm decrypts what Kuvert encrypts, in memory and streamed", async () => {
    const plain = sample(70_001);
    for (const { ciphertext, file } of [encryptAttachment(plain), await encryptStreamed(plain, 8192)]) {
      const decrypted = Attachment.decrypt(new EncryptedAttachment(new Uint8Array(ciphertext), JSON.stringify(file)));
      assert.deepEqual(Buffer.from(decrypted), plain);
    }
  });

  it("Kuvert decrypts what matrix-sdk-crypto-wasm encrypts, and finds a changed byte", async () => {
    const plain = sample(50_000);
    const encrypted = Attachment.encrypt(new Uint8Array(plain));
    const file = { url: "mxc://hs/x", ...(JSON.parse(encrypted.mediaEncryptionInfo!) as object) };
    const ciphertext = Buffer.from(encrypted.encryptedData);
    const { plain: back, integrity } = await decryptBytes(ciphertext, file);
    assert.deepEqual(back, plain);
    assert.equal(integrity, "intact");
    ciphertext[12_345]! ^= 0x40;
    assert.equal((await decryptBytes(ciphertext, file)).integrity, "corrupt");
  });

  it("matrix-sdk-crypto-wasm refuses Kuvert's ciphertext with one byte changed: the hash Kuvert writes is the one checked", () => {
    const { ciphertext, file } = encryptAttachment(sample(1000));
    ciphertext[500]! ^= 1;
    assert.throws(() => Attachment.decrypt(new EncryptedAttachment(new Uint8Array(ciphertext), JSON.stringify(file))));
  });
});

async function decryptBytes(ciphertext: Buffer, file: unknown): Promise<{ plain: Buffer; integrity: string }> {
  const { plaintext, integrity } = decryptAttachment(Readable.from([ciphertext]), readEncryptedFile(file));
  const out: Buffer[] = [];
  for await (const part of plaintext) out.push(part as Buffer);
  return { plain: Buffer.concat(out), integrity: integrity() };
}
