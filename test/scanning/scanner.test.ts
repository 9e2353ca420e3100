// The scanner against a real clamd (test/support/clamd.ts) with an offline EICAR database,
// plus a few fake clamds for replies a real one gives only when something is wrong.
import assert from "node:assert/strict";
import { createServer, type Server, type Socket } from "node:net";
import { Readable } from "node:stream";
import { after, before, describe, it } from "node:test";
import { configSchema } from "../../appservice/config/composed.ts";
import type { KuvertConfig } from "../../appservice/config/schema.ts";
import { ClamdScanner, clamdStreamLimitProblem, readScanReply, ScannerUnavailableError, TooLargeToScanError, type ScanVerdict } from "../../appservice/scanning/scanner.ts";
import { EICAR, startClamd, zipContaining, type Clamd } from "../support/clamd.ts";
import { readFile, rm } from "node:fs/promises";
import { Prescans } from "../../appservice/documents/prescan.ts";
import { DirectoryStaging } from "../../appservice/files/staging.ts";
import { tempDir } from "../support/tmp.ts";

const MiB = 1024 * 1024;

function config(over: Partial<KuvertConfig["scanning"]>): KuvertConfig["scanning"] {
  return { ...configSchema.parse({}).scanning, host: "127.0.0.1", port: 3310, socket: undefined, timeoutSeconds: 10, maxStreamBytes: 25 * MiB, ...over };
}

function tcp(clamd: Clamd, over: Partial<KuvertConfig["scanning"]> = {}): KuvertConfig["scanning"] {
  return config({ host: clamd.host, port: clamd.port, ...over });
}

/** `size` bytes in chunks of `chunkBytes`, made as they are read; `insert` goes in at `at`. */
function generated(size: number, opts: { chunkBytes?: number; insert?: Buffer; at?: number } = {}): Readable {
  const chunkBytes = opts.chunkBytes ?? 64 * 1024;
  let offset = 0;
  return new Readable({
    read() {
      if (offset >= size) return void this.push(null);
      const length = Math.min(chunkBytes, size - offset);
      const chunk = Buffer.allocUnsafe(length);
      for (let i = 0; i < length; i += 4096) chunk.fill((offset + i) & 0xff, i, Math.min(i + 4096, length));
      if (opts.insert && opts.at !== undefined) {
        // Copy the part of `insert` that falls into this chunk (it may straddle chunks).
        const start = Math.max(opts.at, offset);
        const end = Math.min(opts.at + opts.insert.length, offset + length);
        if (start < end) opts.insert.copy(chunk, start - offset, start - opts.at, end - opts.at);
      }
      offset += length;
      this.push(chunk);
    },
  });
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  assert.fail("expected the scan to fail, it gave a verdict");
}

function assertInfected(verdict: ScanVerdict): string {
  assert.equal(verdict.clean, false, "expected an infected verdict");
  assert.ok(!verdict.clean);
  return verdict.signature;
}

/** A TCP server that plays clamd badly. */
async function fakeClamd(onConnection: (socket: Socket) => void): Promise<{ server: Server; port: number; connections: () => number }> {
  let count = 0;
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    count += 1;
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => undefined);
    onConnection(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  const close = server.close.bind(server);
  server.close = (cb) => {
    for (const s of sockets) s.destroy();
    return close(cb);
  };
  return { server, port, connections: () => count };
}

describe("virus scanning with clamd", () => {
  let clamd: Clamd;
  let small: Clamd;

  before(async () => {
    [clamd, small] = await Promise.all([startClamd({ streamMaxLength: "300M" }), startClamd({ streamMaxLength: "1M" })]);
  });
  after(async () => {
    await Promise.all([clamd?.stop(), small?.stop()]);
  });

  it("finds clean bytes clean", async () => {
    const bytes = Buffer.from("Sehr geehrte Damen und Herren, anbei der Bescheid.\n");
    const verdict = await new ClamdScanner(tcp(clamd)).scan(Readable.from([bytes]), bytes.length);
    assert.equal(verdict.clean, true);
    assert.ok(verdict.durationMs >= 0 && Number.isFinite(verdict.durationMs));
  });

  it("finds an empty file clean", async () => {
    const verdict = await new ClamdScanner(tcp(clamd)).scan(Readable.from([]), 0);
    assert.equal(verdict.clean, true);
  });

  it("finds EICAR and names the signature as clamd reports it", async () => {
    const verdict = await new ClamdScanner(tcp(clamd)).scan(Readable.from([EICAR]), EICAR.length);
    assert.match(assertInfected(verdict), /^Eicar-Test-Signature(\.MD5)?\.UNOFFICIAL$/);
    assert.ok(Number.isFinite(verdict.durationMs));
  });

  it("finds EICAR through the local socket too", async () => {
    const scanner = new ClamdScanner(config({ socket: clamd.socket, port: 1 }));
    assert.match(assertInfected(await scanner.scan(Readable.from([EICAR]), EICAR.length)), /^Eicar-Test-Signature/);
    assert.deepEqual(await scanner.ping(), { ok: true, detail: `clamd at socket ${clamd.socket} answers PING` });
  });

  it("finds EICAR inside a ZIP archive", async () => {
    const zip = zipContaining("Bescheid.com", EICAR);
    const verdict = await new ClamdScanner(tcp(clamd)).scan(Readable.from([zip]), zip.length);
    assert.match(assertInfected(verdict), /^Eicar-Test-Signature/);
  });

  it("finds EICAR in the middle of a larger file, across chunk boundaries", async () => {
    const size = 6 * MiB;
    const at = 3 * MiB - 30; // straddles two 64 KiB chunks
    const verdict = await new ClamdScanner(tcp(clamd)).scan(generated(size, { insert: EICAR, at }), size);
    assert.match(assertInfected(verdict), /^Eicar-Test-Signature\.UNOFFICIAL$/);
    // The same file without EICAR is clean: the detection is the embedded string.
    assert.equal((await new ClamdScanner(tcp(clamd)).scan(generated(size), size)).clean, true);
  });

  it("refuses a file over maxStreamBytes without contacting clamd", async () => {
    const fake = await fakeClamd((socket) => socket.end("stream: OK\0"));
    try {
      const scanner = new ClamdScanner(config({ port: fake.port, maxStreamBytes: MiB }));
      const stream = generated(MiB + 1);
      const err = await rejection(scanner.scan(stream, MiB + 1));
      assert.ok(err instanceof TooLargeToScanError, String(err));
      assert.equal(err.limitBytes, MiB);
      assert.equal(err.limitedBy, "maxStreamBytes");
      assert.equal(fake.connections(), 0);
      assert.equal(stream.destroyed, true);
    } finally {
      fake.server.close();
    }
  });

  it("reports clamd's own StreamMaxLength refusal as too large, never as clean", async () => {
    // clamd takes 1 MiB; Kuvert was told 16 MiB.
    for (const scannerConfig of [tcp(small, { maxStreamBytes: 16 * MiB }), config({ socket: small.socket, maxStreamBytes: 16 * MiB })]) {
      for (const size of [MiB + 1, 3 * MiB, 12 * MiB]) {
        const err = await rejection(new ClamdScanner(scannerConfig).scan(generated(size, { chunkBytes: 256 * 1024 }), size));
        assert.ok(err instanceof TooLargeToScanError, `${size} bytes: ${String(err)}`);
        assert.equal(err.limitedBy, "clamd");
      }
    }
    // EICAR beyond clamd's limit is not "clean" either.
    const size = 2 * MiB;
    const err = await rejection(new ClamdScanner(tcp(small, { maxStreamBytes: 16 * MiB })).scan(generated(size, { insert: EICAR, at: size - 100 }), size));
    assert.ok(err instanceof TooLargeToScanError, String(err));
    // Within its limit the small clamd scans as usual.
    assert.match(assertInfected(await new ClamdScanner(tcp(small)).scan(Readable.from([EICAR]), EICAR.length)), /^Eicar-Test-Signature/);
  });

  it("tells whether clamd's StreamMaxLength fits maxStreamBytes, without sending a file", async () => {
    assert.match((await clamdStreamLimitProblem(tcp(small, { maxStreamBytes: 16 * MiB }), undefined, { waitMs: 300 })) ?? "", /StreamMaxLength/);
    assert.equal(await clamdStreamLimitProblem(tcp(small, { maxStreamBytes: MiB }), undefined, { waitMs: 300 }), undefined);
    assert.equal(await clamdStreamLimitProblem(tcp(clamd, { maxStreamBytes: 300 * MiB }), undefined, { waitMs: 300 }), undefined);
    assert.match((await clamdStreamLimitProblem(config({ socket: small.socket, maxStreamBytes: 2 * MiB }), undefined, { waitMs: 300 })) ?? "", /StreamMaxLength/);
    assert.match((await clamdStreamLimitProblem(config({ maxStreamBytes: 2 * MiB }), MiB)) ?? "", /StreamMaxLength/);
    assert.equal(await clamdStreamLimitProblem(config({ maxStreamBytes: MiB }), MiB), undefined);
    const fake = await fakeClamd(() => undefined);
    fake.server.close();
    await assert.rejects(clamdStreamLimitProblem(config({ port: fake.port })), ScannerUnavailableError);
  });

  it("fails closed while clamd is down, quickly, and scans again when it is back", async () => {
    const own = await startClamd();
    try {
      const scanner = new ClamdScanner(tcp(own, { timeoutSeconds: 30 }));
      const bySocket = new ClamdScanner(config({ socket: own.socket, timeoutSeconds: 30 }));
      assert.equal((await scanner.ping()).ok, true);
      await own.pause();

      for (const s of [scanner, bySocket]) {
        const started = Date.now();
        const err = await rejection(s.scan(Readable.from([EICAR]), EICAR.length));
        assert.ok(err instanceof ScannerUnavailableError, String(err));
        assert.equal(err.retryable, true);
        assert.ok(Date.now() - started < 2_000, `took ${Date.now() - started} ms`);
        const ping = await s.ping();
        assert.equal(ping.ok, false);
        assert.match(ping.detail, /could not be reached/);
      }

      await own.resume();
      assert.equal((await scanner.ping()).ok, true);
      assert.match(assertInfected(await scanner.scan(Readable.from([EICAR]), EICAR.length)), /^Eicar-Test-Signature/);
      assert.match(assertInfected(await bySocket.scan(Readable.from([EICAR]), EICAR.length)), /^Eicar-Test-Signature/);
    } finally {
      await own.stop();
    }
  });

  it("counts a clamd that does not answer in time as unavailable, not as a hang", async () => {
    const fake = await fakeClamd(() => undefined); // accepts, reads, never answers
    try {
      const started = Date.now();
      const err = await rejection(new ClamdScanner(config({ port: fake.port, timeoutSeconds: 1 })).scan(Readable.from([EICAR]), EICAR.length));
      assert.ok(err instanceof ScannerUnavailableError, String(err));
      assert.match(err.message, /did not answer within 1 s/);
      assert.ok(Date.now() - started < 3_000);
    } finally {
      fake.server.close();
    }
  });

  it("counts any reply but OK or FOUND as unavailable, never as clean", async () => {
    for (const reply of ["UNKNOWN COMMAND\0", "stream: Can't allocate memory ERROR\0", "stream: OKAY\0", "OK\0", "", "PONG\0"]) {
      const fake = await fakeClamd((socket) => {
        socket.on("data", () => undefined);
        socket.end(reply);
      });
      try {
        const err = await rejection(new ClamdScanner(config({ port: fake.port })).scan(Readable.from([Buffer.from("x")]), 1));
        assert.ok(err instanceof ScannerUnavailableError, `${JSON.stringify(reply)}: ${String(err)}`);
      } finally {
        fake.server.close();
      }
    }
    // An "OK" before the whole file went out is not a verdict on the file.
    const early = await fakeClamd((socket) => socket.end("stream: OK\0"));
    try {
      const err = await rejection(new ClamdScanner(config({ port: early.port })).scan(generated(8 * MiB), 8 * MiB));
      assert.ok(err instanceof ScannerUnavailableError, String(err));
    } finally {
      early.server.close();
    }
  });

  it("reads clamd's replies strictly", () => {
    assert.deepEqual(readScanReply("stream: OK\0"), { kind: "clean" });
    assert.deepEqual(readScanReply("stream: Win.Test.EICAR_HDB-1 FOUND\0"), { kind: "infected", signature: "Win.Test.EICAR_HDB-1" });
    assert.equal(readScanReply("INSTREAM size limit exceeded. ERROR\0").kind, "tooLarge");
    // With AlertExceedsMax, clamd names the limit it stopped at: the file was not scanned whole.
    assert.equal(readScanReply("stream: Heuristics.Limits.Exceeded.MaxFileSize FOUND\0").kind, "tooLarge");
    assert.equal(readScanReply("stream: Heuristics.Limits.Exceeded.MaxScanSize FOUND\0").kind, "tooLarge");
    // What clamd could not read to its end, or could not read at all, is unscannable, not clean.
    const deep = readScanReply("stream: Heuristics.Limits.Exceeded.MaxRecursion FOUND\0");
    assert.equal(deep.kind, "unscannable");
    assert.equal(deep.kind === "unscannable" && deep.signature, "Heuristics.Limits.Exceeded.MaxRecursion");
    const encrypted = readScanReply("stream: Heuristics.Encrypted.Zip FOUND\0");
    assert.equal(encrypted.kind === "unscannable" && encrypted.unscannable.reason, "encrypted");
    for (const reply of ["stream: ERROR", "stream: FOUND", "stream:  FOUND", "", "stream: OK OK", "x: OK"]) assert.equal(readScanReply(reply).kind, "unexpected", reply);
  });

  it("does not give a verdict when the stream fails or is shorter or longer than announced", async () => {
    const scanner = new ClamdScanner(tcp(clamd));
    const broken = new Readable({
      read() {
        this.destroy(new Error("disk went away"));
      },
    });
    await assert.rejects(scanner.scan(broken, 100), /disk went away/);
    const short = await rejection(scanner.scan(Readable.from([Buffer.from("abc")]), 10));
    assert.ok(short instanceof Error && !(short instanceof ScannerUnavailableError), String(short));
    assert.match(short.message, /3 bytes, not the 10 announced/);
    const long = await rejection(scanner.scan(Readable.from([Buffer.from("abcdef")]), 3));
    assert.match(String(long), /larger than the 3 bytes announced/);
    // The scanner still works afterwards.
    assert.equal((await scanner.scan(Readable.from([Buffer.from("abc")]), 3)).clean, true);
  });

  it("streams a 200 MB file without holding it in memory", async () => {
    const size = 200 * 1000 * 1000;
    const scanner = new ClamdScanner(tcp(clamd, { maxStreamBytes: 300 * MiB, timeoutSeconds: 120 }));
    globalThis.gc?.();
    const before = process.memoryUsage().rss;
    let peak = before;
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 10);
    try {
      const verdict = await scanner.scan(generated(size, { chunkBytes: 256 * 1024 }), size);
      assert.equal(verdict.clean, true);
    } finally {
      clearInterval(sampler);
    }
    peak = Math.max(peak, process.memoryUsage().rss);
    const growth = peak - before;
    assert.ok(growth < 100 * MiB, `RSS grew by ${Math.round(growth / MiB)} MiB`);
  });

  describe("scanning while a document is staged", () => {
    let dir: string;
    let staging: DirectoryStaging;
    before(async () => {
      dir = tempDir("kuvert-prescan-");
      staging = new DirectoryStaging(dir);
      await staging.init();
    });
    after(async () => {
      await rm(dir, { recursive: true, force: true });
    });

    it("gives clamd's verdict on exactly the staged bytes, and the pipeline takes it once", async () => {
      const prescans = new Prescans(new ClamdScanner(tcp(clamd)));
      const size = 3 * MiB + 17;
      const { tap, verdict } = prescans.start();
      const staged = await staging.write("doc-clean", generated(size, { chunkBytes: 100_000 }), 10 * MiB, tap);
      assert.equal(staged.size, size);
      prescans.keep("doc-clean", staged.size, verdict);
      const taken = await prescans.take("doc-clean");
      assert.equal(taken?.clean, true);
      assert.equal(taken?.bytes, size);
      assert.equal(await prescans.take("doc-clean"), undefined, "a verdict is taken once");

      const infected = prescans.start();
      const bad = await staging.write("doc-eicar", generated(2 * MiB, { insert: EICAR, at: MiB - 10 }), 10 * MiB, infected.tap);
      prescans.keep("doc-eicar", bad.size, infected.verdict);
      const found = await prescans.take("doc-eicar");
      assert.ok(found);
      assert.match(assertInfected(found), /^Eicar-Test-Signature/);
      assert.equal((await readFile(staging.path("doc-eicar"))).length, 2 * MiB, "staging is not changed by the scan");
    });

    it("throws a verdict on a different number of bytes away", async () => {
      const prescans = new Prescans(new ClamdScanner(tcp(clamd)));
      const { tap, verdict } = prescans.start();
      const staged = await staging.write("doc-count", Readable.from([Buffer.from("hello")]), MiB, tap);
      prescans.keep("doc-count", staged.size + 1, verdict);
      assert.equal(await prescans.take("doc-count"), undefined);
    });

    it("stages the document anyway when clamd is not there, and leaves the scan to the pipeline", async () => {
      const down = await fakeClamd((socket) => socket.destroy());
      down.server.close();
      const prescans = new Prescans(new ClamdScanner(config({ port: down.port })));
      const { tap, verdict } = prescans.start();
      const size = 2 * MiB;
      const staged = await staging.write("doc-down", generated(size), 10 * MiB, tap);
      assert.equal(staged.size, size);
      prescans.keep("doc-down", staged.size, verdict);
      assert.equal(await prescans.take("doc-down"), undefined);
    });

    it("stages the document when clamd stops reading halfway, without waiting for the scan timeout", { timeout: 60_000 }, async () => {
      // A clamd that takes the command and then never reads again: the early scan is given up
      // after a short stall, long before the scan timeout (10 minutes here).
      const stalled = await fakeClamd((socket) => socket.pause());
      try {
        const prescans = new Prescans(new ClamdScanner(config({ port: stalled.port, timeoutSeconds: 600 })));
        const { tap, verdict } = prescans.start();
        const size = 20 * MiB;
        const staged = await staging.write("doc-stalled", generated(size), 30 * MiB, tap);
        assert.equal(staged.size, size);
        prescans.keep("doc-stalled", staged.size, verdict);
        assert.equal(await prescans.take("doc-stalled"), undefined);
      } finally {
        stalled.server.close();
      }
    });
  });
});
