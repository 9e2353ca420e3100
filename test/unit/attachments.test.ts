// Encrypted attachments (appservice/matrix/attachments.ts): AES-256-CTR, the SHA-256 of the
// ciphertext checked, streamed.
import assert from "node:assert/strict";
import { createCipheriv, createHash, randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import { text } from "node:stream/consumers";
import { describe, it } from "node:test";
import { decryptAttachment, encryptAttachment, readEncryptedFile, UndecryptableError } from "../../appservice/matrix/attachments.ts";

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
