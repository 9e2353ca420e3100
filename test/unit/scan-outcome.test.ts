// The scan step documents, inbound files and circulars share (appservice/scanning/outcome.ts),
// and putting a file into the media repository once (appservice/matrix/media.ts uploadOnce).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Homeserver } from "../../appservice/matrix/homeserver.ts";
import { uploadOnce } from "../../appservice/matrix/media.ts";
import { scanDuration } from "../../appservice/metrics.ts";
import { refusalOf, scannerWaitSeconds, scanTimed, verdictLabel } from "../../appservice/scanning/outcome.ts";
import { ScannerUnavailableError, TooLargeToScanError, type ScanVerdict } from "../../appservice/scanning/scanner.ts";

const clean: ScanVerdict = { clean: true, durationMs: 3, bytes: 10 };
const infected: ScanVerdict = { clean: false, signature: "Eicar-Signature", durationMs: 3, bytes: 68, member: "inner/eicar.com" };
const locked: ScanVerdict = { clean: false, signature: "Kuvert.Unscannable.encrypted", durationMs: 1, bytes: 200, unscannable: { reason: "encrypted", message: "password-protected" } };

async function scansLabelled(label: string): Promise<number> {
  const metric = await scanDuration.get();
  return metric.values.find((v) => v.metricName === "kuvert_scan_duration_seconds_count" && v.labels.verdict === label)?.value ?? 0;
}

describe("one scan as the domains take it", () => {
  it("tells a verdict, a file too large to scan and a scanner that is away apart, and times each by its label", async () => {
    const before = { clean: await scansLabelled("clean"), unscannable: await scansLabelled("unscannable"), too_large: await scansLabelled("too_large"), unavailable: await scansLabelled("unavailable") };
    assert.deepEqual(await scanTimed(async () => clean, verdictLabel), { kind: "scanned", result: clean });
    assert.deepEqual(await scanTimed(async () => locked, verdictLabel), { kind: "scanned", result: locked });
    assert.deepEqual(
      await scanTimed(async () => {
        throw new TooLargeToScanError("over StreamMaxLength", 1024, "clamd");
      }, verdictLabel),
      { kind: "too-large" },
    );
    const away = new ScannerUnavailableError("connect ECONNREFUSED");
    assert.deepEqual(
      await scanTimed(async () => {
        throw away;
      }, verdictLabel),
      { kind: "unavailable", error: away },
    );
    assert.equal((await scansLabelled("clean")) - before.clean, 1);
    assert.equal((await scansLabelled("unscannable")) - before.unscannable, 1);
    assert.equal((await scansLabelled("too_large")) - before.too_large, 1);
    assert.equal((await scansLabelled("unavailable")) - before.unavailable, 1);
  });

  it("throws any other error: a broken file read is not a verdict", async () => {
    await assert.rejects(
      scanTimed(async () => {
        throw new Error("EIO");
      }, verdictLabel),
      /EIO/,
    );
  });

  it("labels verdicts: clean, infected, and what cannot be scanned whole", () => {
    assert.deepEqual([clean, infected, locked].map(verdictLabel), ["clean", "infected", "unscannable"]);
  });

  it("waits 5 seconds for a scanner that is away, doubling with each try, never more than 5 minutes", () => {
    assert.deepEqual([0, 1, 2, 3, 4, 5, 6, 7, 50].map(scannerWaitSeconds), [5, 10, 20, 40, 80, 160, 300, 300, 300]);
  });

  it("names why a file is refused, and refuses nothing for a clean verdict", () => {
    assert.deepEqual(refusalOf("too-large"), { reason: "too-large-to-scan", signature: null });
    assert.deepEqual(refusalOf(infected), { reason: "infected", signature: "Eicar-Signature", member: "inner/eicar.com" });
    assert.deepEqual(refusalOf(locked), { reason: "unscannable", signature: "Kuvert.Unscannable.encrypted", unscannable: { reason: "encrypted", message: "password-protected" } });
    assert.throws(() => refusalOf(clean), /refuses nothing/);
  });
});

describe("a file put into the media repository once", () => {
  // Neither case below asks the homeserver anything: there is a media id already.
  const hs = { url: "http://127.0.0.1:9", authorization: "Bearer unused" } as Homeserver;

  it("repeats the PUT to the id reserved before a crash, then records the upload", async () => {
    const recorded: [string, boolean][] = [];
    const puts: (string | null)[] = [];
    const mxc = await uploadOnce(
      hs,
      { mxc: "mxc://hs.example/reserved", uploaded: false },
      async (uri, uploaded) => recorded.push([uri, uploaded]),
      async (reserved) => {
        puts.push(reserved);
        return reserved ?? "mxc://hs.example/posted";
      },
    );
    assert.equal(mxc, "mxc://hs.example/reserved");
    assert.deepEqual(puts, ["mxc://hs.example/reserved"]);
    assert.deepEqual(recorded, [["mxc://hs.example/reserved", true]]);
  });

  it("never uploads a file recorded as uploaded again", async () => {
    const mxc = await uploadOnce(
      hs,
      { mxc: "mxc://hs.example/done", uploaded: true },
      async () => assert.fail("nothing to record"),
      async () => assert.fail("no second upload"),
    );
    assert.equal(mxc, "mxc://hs.example/done");
    await assert.rejects(
      uploadOnce(
        hs,
        { mxc: null, uploaded: true },
        async () => undefined,
        async () => "mxc://x/y",
      ),
      /no media URI/,
    );
  });
});
