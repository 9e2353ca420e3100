// The scan step documents, inbound files and circulars share (appservice/scanning/outcome.ts),
// and putting a file into the media repository once (appservice/matrix/media.ts uploadOnce).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
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
  /** The steps uploadOnce takes, in order, with what each was given. */
  function recorder(reserved: string | null) {
    const steps: string[] = [];
    return {
      steps,
      reserve: async () => {
        steps.push("reserve");
        return reserved;
      },
      record: async (mxc: string, uploaded: boolean) => {
        steps.push(`record ${mxc} ${uploaded ? "uploaded" : "reserved"}`);
      },
      put: async (id: string | null) => {
        steps.push(`put ${id ?? "(POST)"}`);
        return id ?? "mxc://hs.example/posted";
      },
    };
  }

  it("records a reserved id before its PUT, so that a crash between them repeats the same PUT", async () => {
    const r = recorder("mxc://hs.example/new");
    assert.equal(await uploadOnce({ mxc: null, uploaded: false }, r), "mxc://hs.example/new");
    assert.deepEqual(r.steps, ["reserve", "record mxc://hs.example/new reserved", "put mxc://hs.example/new", "record mxc://hs.example/new uploaded"]);
  });

  it("uploads with a POST where the homeserver reserves no id, and records the answer", async () => {
    const r = recorder(null);
    assert.equal(await uploadOnce({ mxc: null, uploaded: false }, r), "mxc://hs.example/posted");
    assert.deepEqual(r.steps, ["reserve", "put (POST)", "record mxc://hs.example/posted uploaded"]);
  });

  it("repeats the PUT to the id reserved before a crash, then records the upload", async () => {
    const r = recorder("mxc://hs.example/other");
    assert.equal(await uploadOnce({ mxc: "mxc://hs.example/reserved", uploaded: false }, r), "mxc://hs.example/reserved");
    assert.deepEqual(r.steps, ["put mxc://hs.example/reserved", "record mxc://hs.example/reserved uploaded"]);
  });

  it("never uploads a file recorded as uploaded again", async () => {
    const r = recorder("mxc://hs.example/other");
    assert.equal(await uploadOnce({ mxc: "mxc://hs.example/done", uploaded: true }, r), "mxc://hs.example/done");
    assert.deepEqual(r.steps, []);
    await assert.rejects(uploadOnce({ mxc: null, uploaded: true }, r), /no media URI/);
  });
});
