// Canaries: test files Kuvert makes at run time and sends clamd, to learn whether clamd is
// configured to catch what Kuvert relies on it for. A clamd without signatures, without
// AlertEncrypted, or that answers OK for what it did not read to the end (MaxRecursion,
// MaxFileSize without AlertExceedsMax) would pass malware as clean; while it would pass any
// canary, Kuvert is not ready and documents wait. The files are the EICAR test file in
// wrappings, built here from parts (the repository holds no EICAR file): no real malware.
import { Readable } from "node:stream";
import type { KuvertConfig } from "../config/schema.ts";
import { ClamdScanner, ScannerUnavailableError, TooLargeToScanError, type ScanVerdict } from "./scanner.ts";
import { nestedZip, smallZip } from "./zipwriter.ts";

/** The EICAR anti-virus test file (68 bytes), put together from parts. */
export function eicar(): Buffer {
  return Buffer.from(["X5O!P%@AP[4\\PZX54(P^)7CC)7}$", "EICAR-STANDARD-", "ANTIVIRUS-", "TEST-FILE!$H+H*"].join(""), "latin1");
}

/** Deeper than clamd's MaxRecursion (17 by default) and Kuvert's own limit. */
export const canaryNestingLevels = 64;

export interface Canary {
  name: "eicar" | "encrypted-zip" | "nested" | "over-stream-limit";
  /** What to change when clamd answers OK for it. */
  advice: string;
  /** The bytes, made when asked for. */
  open(): { stream: Readable; size: number };
}

/** The canaries for this configuration. */
export function canaries(config: KuvertConfig["scanning"]): Canary[] {
  const buffer = (b: Buffer) => () => ({ stream: Readable.from([b]), size: b.length });
  const overLimit = config.maxStreamBytes + 1024;
  return [
    {
      name: "eicar",
      advice: "clamd answers OK for the EICAR test file: its signature database is missing or broken (see freshclam)",
      open: buffer(eicar()),
    },
    {
      name: "encrypted-zip",
      advice: "clamd answers OK for a password-protected ZIP: set AlertEncrypted yes in clamd.conf",
      open: buffer(smallZip([{ name: "eicar.com", content: eicar() }], { password: "kuvert" })),
    },
    {
      name: "nested",
      advice: `clamd answers OK for EICAR in ${canaryNestingLevels} nested ZIP archives, past its MaxRecursion: set AlertExceedsMax yes in clamd.conf`,
      open: buffer(nestedZip(eicar(), "eicar.com", canaryNestingLevels)),
    },
    {
      name: "over-stream-limit",
      advice: `clamd answers OK for ${overLimit} bytes with EICAR at the end, more than scanning.maxStreamBytes: set StreamMaxLength to scanning.maxStreamBytes (${config.maxStreamBytes}), MaxFileSize and MaxScanSize at least that, and AlertExceedsMax yes`,
      open: () => ({ stream: paddedEicar(overLimit), size: overLimit }),
    },
  ];
}

/** `size` bytes: zeros, then EICAR as the last 68, made as they are read. */
function paddedEicar(size: number): Readable {
  const tail = eicar();
  const chunk = Buffer.alloc(256 * 1024);
  let left = size - tail.length;
  return new Readable({
    read() {
      if (left > 0) {
        const n = Math.min(left, chunk.length);
        left -= n;
        this.push(n === chunk.length ? chunk : chunk.subarray(0, n));
      } else if (left === 0) {
        left = -1;
        this.push(tail);
      } else this.push(null);
    },
  });
}

export interface CanaryReport {
  at: Date;
  /** The canaries clamd answered OK for, with what to change. */
  passed: { name: Canary["name"]; advice: string }[];
  /** What clamd answered for each (signature, "refused as too large", or "OK"). */
  answers: Record<string, string>;
}

/**
 * Sends every canary to clamd. Answers which ones clamd passed; throws ScannerUnavailableError
 * when clamd cannot be asked (then nothing is known).
 */
export async function sendCanaries(config: KuvertConfig["scanning"]): Promise<CanaryReport> {
  // The over-limit canary is larger than Kuvert itself sends clamd: a scanner of its own lets it through.
  const clamd = new ClamdScanner({ ...config, maxStreamBytes: config.maxStreamBytes + 64 * 1024 });
  const passed: CanaryReport["passed"] = [];
  const answers: Record<string, string> = {};
  for (const canary of canaries(config)) {
    const { stream, size } = canary.open();
    let verdict: ScanVerdict;
    try {
      verdict = await clamd.scan(stream, size);
    } catch (err) {
      if (err instanceof TooLargeToScanError) {
        answers[canary.name] = "refused as too large";
        continue;
      }
      if (err instanceof ScannerUnavailableError) throw err;
      throw new ScannerUnavailableError(`The virus scanner could not be checked (${(err as Error).message}).`, { cause: err });
    }
    answers[canary.name] = verdict.clean ? "OK" : verdict.signature;
    if (verdict.clean) passed.push({ name: canary.name, advice: canary.advice });
  }
  return { at: new Date(), passed, answers };
}
