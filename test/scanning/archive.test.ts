// The archive policy and the canaries against a real clamd (test/support/clamd.ts, with the
// deployment's settings and the offline EICAR database). Each attack is also shown to pass clamd
// alone where it does: that is what Kuvert delivered on before its own walk.
import assert from "node:assert/strict";
import { createReadStream, createWriteStream, statSync } from "node:fs";
import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { after, before, describe, it } from "node:test";
import { gzipSync } from "node:zlib";
import yazl from "yazl";
import { configSchema } from "../../appservice/config/composed.ts";
import type { KuvertConfig } from "../../appservice/config/schema.ts";
import { UnscannableError, walkZip } from "../../appservice/scanning/archive.ts";
import { DocumentScanner } from "../../appservice/scanning/policy.ts";
import { ClamdScanner, ScannerUnavailableError, type ScanVerdict } from "../../appservice/scanning/scanner.ts";
import { nestedZip, smallZip } from "../../appservice/scanning/zipwriter.ts";
import { EICAR, startClamd, type Clamd } from "../support/clamd.ts";

const GiB = 1024 * 1024 * 1024;

function scanning(clamd: Clamd): KuvertConfig["scanning"] {
  return { ...configSchema.parse({}).scanning, host: clamd.host, port: clamd.port, timeoutSeconds: 60 };
}

type Entry = { name: string; content: Buffer | (() => Readable) | "folder"; compress?: boolean; size?: number };

/** Writes a ZIP with yazl (streaming), ZIP64 records with `zip64`. */
async function writeZip(path: string, entries: Entry[] | Iterable<Entry>, opts: { zip64?: boolean } = {}): Promise<void> {
  const zip = new yazl.ZipFile();
  const written = pipeline(zip.outputStream, createWriteStream(path));
  for (const e of entries) {
    const options = { compress: e.compress ?? true, forceZip64Format: opts.zip64 ?? false };
    if (e.content === "folder") zip.addEmptyDirectory(e.name);
    else if (Buffer.isBuffer(e.content)) zip.addBuffer(e.content, e.name, options);
    else zip.addReadStream(e.content(), e.name, { ...options, ...(e.size !== undefined ? { size: e.size } : {}) });
  }
  zip.end({ forceZip64Format: opts.zip64 ?? false, comment: "" });
  await written;
}

/** `size` zero bytes, made as they are read. */
function zeros(size: number): Readable {
  const chunk = Buffer.alloc(1024 * 1024);
  let left = size;
  return new Readable({
    read() {
      if (left <= 0) return void this.push(null);
      const n = Math.min(left, chunk.length);
      left -= n;
      this.push(n === chunk.length ? chunk : chunk.subarray(0, n));
    },
  });
}

function unscannable(verdict: ScanVerdict, reasons: string[]): void {
  assert.equal(verdict.clean, false, "not clean");
  if (verdict.clean) return;
  assert.ok(verdict.unscannable, `unscannable, not ${verdict.signature}`);
  assert.ok(reasons.includes(verdict.unscannable.reason), `reason ${verdict.unscannable.reason}, expected ${reasons.join(" or ")}: ${verdict.unscannable.message}`);
}

describe("archives: every member scanned, or refused", () => {
  let clamd: Clamd;
  let dir: string;
  let scanner: DocumentScanner;
  let plain: ClamdScanner;
  let bomb: string;

  before(async () => {
    clamd = await startClamd();
    dir = await mkdtemp(join(tmpdir(), "kuvert-archives-"));
    scanner = new DocumentScanner(scanning(clamd), dir);
    plain = new ClamdScanner(scanning(clamd));
    // 2 GiB of zeros in one entry, made as a stream: about 2 MiB packed.
    bomb = join(dir, "bomb.zip");
    await writeZip(bomb, [{ name: "zeros.bin", content: () => zeros(2 * GiB), size: 2 * GiB }]);
  });
  after(async () => {
    await clamd?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const file = async (name: string, bytes: Buffer) => {
    const path = join(dir, name);
    await writeFile(path, bytes);
    return path;
  };
  const scanPath = (path: string) => scanner.scanFile(path, statSync(path).size);
  const clamdAlone = (path: string) => plain.scan(createReadStream(path), statSync(path).size);

  it("delivers an ordinary ZIP with a ZIP inside once every member was scanned", async () => {
    const inner = smallZip([{ name: "anlage.txt", content: Buffer.from("Anlage\n") }], { deflate: true });
    const path = join(dir, "ordinary.zip");
    await writeZip(path, [
      { name: "bescheid.txt", content: Buffer.from("Bescheid 2026\n".repeat(100)) },
      { name: "ordner", content: "folder" },
      { name: "anlagen.zip", content: inner, compress: false },
    ]);
    const verdict = await scanPath(path);
    assert.equal(verdict.clean, true, JSON.stringify(verdict));
    const { walk } = await walkZip(path, { scanner: plain, limits: scanning(clamd).archives, maxMemberBytes: 25 * 1024 * 1024, scratchDir: dir });
    assert.deepEqual(walk, { members: 4, scanned: 3, bytes: 1400 + inner.length + 7 });
    assert.deepEqual(
      (await readdir(dir)).filter((n) => n.startsWith(".archive-")),
      [],
      "no scratch file is left",
    );
  });

  it("refuses EICAR in a password-protected ZIP (zip -P) as unscannable, also where clamd lacks AlertEncrypted", async () => {
    const path = await file("encrypted.zip", smallZip([{ name: "eicar.com", content: EICAR }], { password: "geheim" }));
    unscannable(await scanPath(path), ["encrypted"]);
    const lax = await startClamd({ settings: { AlertEncrypted: null } });
    try {
      const laxScanner = new ClamdScanner(scanning(lax));
      assert.equal((await laxScanner.scan(createReadStream(path), statSync(path).size)).clean, true, "clamd alone passes it");
      await assert.rejects(walkZip(path, { scanner: laxScanner, limits: scanning(lax).archives, maxMemberBytes: 1 << 20, scratchDir: dir }), (err: unknown) => {
        assert.ok(err instanceof UnscannableError && err.reason === "encrypted", String(err));
        return true;
      });
    } finally {
      await lax.stop();
    }
  });

  it("finds EICAR in a ZIP64 archive, for which clamd alone answers OK", async () => {
    const path = join(dir, "zip64.zip");
    await writeZip(path, [{ name: "eicar.com", content: EICAR }], { zip64: true });
    assert.equal((await clamdAlone(path)).clean, true, "clamd alone passes it");
    const verdict = await scanPath(path);
    assert.equal(verdict.clean, false);
    assert.ok(!verdict.clean && /^Eicar-Test-Signature/.test(verdict.signature) && verdict.member === "eicar.com", JSON.stringify(verdict));
  });

  it("refuses EICAR 25 archive levels deep", async () => {
    const path = await file("deep.zip", nestedZip(EICAR, "eicar.com", 25));
    unscannable(await scanPath(path), ["depth", "scanner"]);
    // Kuvert's own walk refuses it, also where clamd would pass it (no AlertExceedsMax).
    const lax = await startClamd({ settings: { AlertExceedsMax: null } });
    try {
      const laxScanner = new ClamdScanner(scanning(lax));
      assert.equal((await laxScanner.scan(createReadStream(path), statSync(path).size)).clean, true, "clamd alone passes it");
      await assert.rejects(walkZip(path, { scanner: laxScanner, limits: scanning(lax).archives, maxMemberBytes: 1 << 20, scratchDir: dir }), (err: unknown) => {
        assert.ok(err instanceof UnscannableError && err.reason === "depth", String(err));
        return true;
      });
    } finally {
      await lax.stop();
    }
  });

  it("refuses EICAR after 10,050 entries", async () => {
    const path = join(dir, "many.zip");
    function* entries(): Iterable<Entry> {
      for (let i = 0; i < 10_050; i++) yield { name: `f${i}.txt`, content: Buffer.from(`${i}\n`) };
      yield { name: "eicar.com", content: EICAR };
    }
    await writeZip(path, entries());
    unscannable(await scanPath(path), ["members", "scanner"]);
  });

  it("refuses a zip bomb: 2 GiB of zeros in one entry", async () => {
    unscannable(await scanPath(bomb), ["size", "ratio"]);
    await assert.rejects(walkZip(bomb, { scanner: plain, limits: scanning(clamd).archives, maxMemberBytes: 4 * GiB, scratchDir: dir }), (err: unknown) => {
      assert.ok(err instanceof UnscannableError && err.reason === "size", String(err));
      return true;
    });
  });

  it("refuses a nested ZIP64 zip bomb", async () => {
    const path = join(dir, "nested-bomb.zip");
    await writeZip(
      path,
      [1, 2, 3].map((n) => ({ name: `part${n}.zip`, content: () => createReadStream(bomb), size: statSync(bomb).size, compress: false })),
      { zip64: true },
    );
    unscannable(await scanPath(path), ["size", "ratio", "scanner"]);
  });

  it("refuses archive formats Kuvert does not open, at the top and inside a ZIP", async () => {
    const gz = gzipSync(Buffer.from("Bescheid\n"));
    unscannable(await scanPath(await file("eicar.gz", gz)), ["format"]);
    const path = join(dir, "with-gzip.zip");
    await writeZip(path, [{ name: "eicar.gz", content: gz, compress: false }]);
    unscannable(await scanPath(path), ["format"]);
  });

  it("applies the same policy to a stream (a file being downloaded)", async () => {
    const encrypted = smallZip([{ name: "eicar.com", content: EICAR }], { password: "geheim" });
    unscannable(await scanner.scan(Readable.from([encrypted]), encrypted.length), ["encrypted"]);
    const path = join(dir, "zip64-stream.zip");
    await writeZip(path, [{ name: "eicar.com", content: EICAR }], { zip64: true });
    const verdict = await scanner.scan(createReadStream(path), statSync(path).size);
    assert.ok(!verdict.clean && /^Eicar-Test-Signature/.test(verdict.signature), JSON.stringify(verdict));
    assert.deepEqual(
      (await readdir(dir)).filter((n) => n.startsWith(".archive-")),
      [],
      "no scratch file is left",
    );
  });
});

describe("canaries: clamd is trusted only while it catches them", () => {
  it("a clamd with the deployment's settings catches every canary and is ready", async () => {
    const clamd = await startClamd();
    try {
      const scanner = new DocumentScanner(scanning(clamd), tmpdir());
      const ready = await scanner.ping();
      assert.equal(ready.ok, true, ready.detail);
      assert.deepEqual(Object.keys(scanner.canaries.report!.answers).sort(), ["eicar", "encrypted-zip", "nested", "over-stream-limit"]);
    } finally {
      await clamd.stop();
    }
  });

  for (const [name, settings, advice] of [
    ["a clamd missing AlertEncrypted", { AlertEncrypted: null }, /AlertEncrypted yes/],
    ["a clamd missing AlertExceedsMax", { AlertExceedsMax: null }, /AlertExceedsMax yes/],
    ["a clamd with MaxFileSize below the stream limit and no AlertExceedsMax", { AlertExceedsMax: null, MaxFileSize: "1M" }, /StreamMaxLength/],
  ] as const) {
    it(`${name} is not ready, and documents wait`, async () => {
      const clamd = await startClamd({ settings });
      try {
        const scanner = new DocumentScanner(scanning(clamd), tmpdir());
        const alerts: string[] = [];
        scanner.canaries.onUnsafe = async ({ problem }) => void alerts.push(problem);
        const ready = await scanner.ping();
        assert.equal(ready.ok, false);
        assert.match(ready.detail, advice);
        await assert.rejects(scanner.scan(Readable.from([Buffer.from("hello")]), 5), (err: unknown) => err instanceof ScannerUnavailableError && advice.test(err.message));
        assert.equal(alerts.length, 1, "staff are told once");
      } finally {
        await clamd.stop();
      }
    });
  }
});
