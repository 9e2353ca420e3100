// Kuvert's media uploads (appservice/matrix/media.ts): files by path and streams, reserved media
// ids (where the homeserver has async upload), and the homeserver's refusals, which must come
// back as its answer and never hang. Each upload is checked by downloading it again.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { createWriteStream } from "node:fs";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { after, before, describe, it } from "node:test";
import { createMedia, downloadMedia, uploadMedia } from "../../appservice/matrix/media.ts";
import { HomeserverError, type Homeserver } from "../../appservice/matrix/homeserver.ts";
import { freePort } from "../support/ports.ts";
import { startStack, type Stack } from "../support/harness.ts";
import { tempDir } from "../support/tmp.ts";

const MiB = 1024 * 1024;

/** `size` bytes that differ from chunk to chunk (and from file to file with another `seed`), written to `path`. */
async function makeFile(path: string, size: number, seed = 0): Promise<string> {
  const hash = createHash("sha256");
  let left = size;
  let n = 0;
  const source = new Readable({
    read() {
      if (left === 0) return void this.push(null);
      const chunk = Buffer.alloc(Math.min(left, 300_000), (seed + n++) % 251);
      left -= chunk.length;
      hash.update(chunk);
      this.push(chunk);
    },
  });
  await pipeline(source, createWriteStream(path));
  return hash.digest("hex");
}

async function sha256Of(stream: Readable): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of stream) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

describe("media uploads", () => {
  let stack: Stack;
  let hs: Homeserver;
  let dir: string;

  before(async () => {
    stack = await startStack({ name: "media" });
    hs = stack.kuvert!.homeserver;
    dir = tempDir("kuvert-media-");
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
    await stack.stop();
  });

  it("uploads a file by path to a reserved media id, whole, and takes a repeated upload as done (test homeserver: async upload, as Synapse 1.111 and later)", async () => {
    const path = join(dir, "bescheid.pdf");
    const size = 5 * MiB + 123;
    const digest = await makeFile(path, size);
    const reserved = await createMedia(hs);
    assert.match(reserved ?? "", /^mxc:\/\//);
    const info = { filename: "Bescheid.pdf", mimetype: "application/pdf", size };
    assert.equal(await uploadMedia(hs, { path }, info, reserved), reserved);
    assert.equal(await uploadMedia(hs, { path }, info, reserved), reserved, "M_CANNOT_OVERWRITE_MEDIA means an earlier attempt got through");
    assert.equal(stack.fixture.mediaInfo(reserved!)?.filename, "Bescheid.pdf");
    const download = await downloadMedia(hs, reserved!);
    assert.equal(download.size, size);
    assert.equal(await sha256Of(download.stream), digest);
  });

  it("uploads a file by path without a reserved id, whole", async () => {
    const path = join(dir, "anlage.pdf");
    const size = 3 * MiB + 7;
    const digest = await makeFile(path, size);
    const mxc = await uploadMedia(hs, { path }, { filename: "Anlage.pdf", mimetype: "application/pdf", size }, null);
    const download = await downloadMedia(hs, mxc);
    assert.equal(download.size, size);
    assert.equal(await sha256Of(download.stream), digest);
  });

  it("keeps files apart when uploads run at once and one after another, whose read buffers are used again", async () => {
    // Sizes around the 1 MiB read buffer: smaller, exactly one, one byte more, several.
    const sizes = [10_000, MiB, MiB + 1, 2 * MiB + 5, 700, 3 * MiB + 333, 65_536, MiB - 1];
    const files = await Promise.all(sizes.map(async (size, i) => ({ path: join(dir, `parallel-${i}.bin`), size, digest: await makeFile(join(dir, `parallel-${i}.bin`), size, 17 * i + 1) })));
    const upload = (f: (typeof files)[number]) => uploadMedia(hs, { path: f.path }, { filename: "parallel.bin", mimetype: "application/octet-stream", size: f.size }, null);
    // Three at a time: each upload after the first three starts while two others still hold
    // buffers, with the buffers the one that just ended gave back.
    const mxcs: string[] = [];
    let next = 0;
    await Promise.all(
      [0, 1, 2].map(async () => {
        for (let i = next++; i < files.length; i = next++) mxcs[i] = await upload(files[i]!);
      }),
    );
    for (const [i, mxc] of mxcs.entries()) {
      const download = await downloadMedia(hs, mxc);
      assert.equal(download.size, files[i]!.size, `file ${i}`);
      assert.equal(await sha256Of(download.stream), files[i]!.digest, `file ${i} came back as it was`);
    }
  });

  it("uploads a stream without a reserved id", async () => {
    const mxc = await uploadMedia(hs, Readable.from([Buffer.from("Hallo "), Buffer.from("Welt")]), { filename: "gruss.txt", mimetype: "text/plain", size: 10 }, null);
    const download = await downloadMedia(hs, mxc);
    assert.equal(download.size, 10);
    assert.equal(Buffer.concat(await download.stream.toArray()).toString(), "Hallo Welt");
  });

  it("gives the homeserver's refusal of a file over its upload limit as its answer", async () => {
    const path = join(dir, "too-large.bin");
    const size = 51 * MiB; // max_upload_size is Synapse's default 50 MiB, in the test homeserver and the suites' Synapse
    await makeFile(path, size);
    const err = await uploadMedia(hs, { path }, { filename: "too-large.bin", mimetype: "application/octet-stream", size }, null).then(
      () => assert.fail("the upload should be refused"),
      (e: unknown) => e,
    );
    assert.ok(err instanceof HomeserverError, String(err));
    assert.equal(err.status, 413);
    assert.equal(err.errcode, "M_TOO_LARGE");
  });

  it("says the homeserver is unreachable when nothing listens", async () => {
    const port = await freePort();
    const unreachable = { url: `http://127.0.0.1:${port}`, authorization: hs.authorization } as Homeserver;
    const path = join(dir, "small.bin");
    await makeFile(path, 1000);
    const err = await uploadMedia(unreachable, { path }, { filename: "small.bin", mimetype: "application/octet-stream", size: 1000 }, null).then(
      () => assert.fail("nothing listens there"),
      (e: unknown) => e,
    );
    assert.ok(err instanceof HomeserverError);
    assert.equal(err.errcode, "K_HOMESERVER_UNREACHABLE");
  });
});
