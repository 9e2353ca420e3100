// One scan as every domain that sends files into rooms takes it (documents, inbound files,
// circulars): timed by verdict, a file too large to scan and a scanner that is away told apart
// from a verdict, the wait while the scanner is away, and the reason a file is refused.
import { scanDuration } from "../metrics.ts";
import { ScannerUnavailableError, TooLargeToScanError, type ScanVerdict, type Unscannable } from "./scanner.ts";

/** The label of kuvert_scan_duration_seconds. */
export type ScanLabel = "clean" | "infected" | "unscannable" | "too_large" | "unavailable";

/** What came of one scan: its result, a file larger than the scanner reads, or a scanner that is away (or not trusted). */
export type ScanOutcome<T> = { kind: "scanned"; result: T } | { kind: "too-large" } | { kind: "unavailable"; error: ScannerUnavailableError };

/** The label of a verdict on one file. */
export function verdictLabel(verdict: ScanVerdict): ScanLabel {
  return verdict.clean ? "clean" : verdict.unscannable ? "unscannable" : "infected";
}

/** Runs one scan and times it; other errors than a file too large and a scanner away are thrown. */
export async function scanTimed<T>(run: () => Promise<T>, label: (result: T) => ScanLabel): Promise<ScanOutcome<T>> {
  const timer = scanDuration.startTimer();
  try {
    const result = await run();
    timer({ verdict: label(result) });
    return { kind: "scanned", result };
  } catch (err) {
    if (err instanceof TooLargeToScanError) {
      timer({ verdict: "too_large" });
      return { kind: "too-large" };
    }
    if (err instanceof ScannerUnavailableError) {
      timer({ verdict: "unavailable" });
      return { kind: "unavailable", error: err };
    }
    throw err;
  }
}

/**
 * Seconds a file waits before its next try while the scanner is away: 5, doubling with each
 * try, at most 5 minutes. Waiting is not a failed attempt: nothing goes out unscanned.
 */
export function scannerWaitSeconds(attempts: number): number {
  return Math.min(300, 5 * 2 ** Math.min(attempts, 6));
}

/** Why a file is refused, as the audit log names it: what clamd found, what could not be scanned whole, or a file too large to scan. */
export type Refusal = { reason: "too-large-to-scan"; signature: null } | { reason: "unscannable"; signature: string; unscannable: Unscannable } | { reason: "infected"; signature: string; member?: string };

/** The refusal of a file that is too large to scan or whose verdict is not clean. */
export function refusalOf(verdict: ScanVerdict | "too-large"): Refusal {
  if (verdict === "too-large") return { reason: "too-large-to-scan", signature: null };
  if (verdict.clean) throw new Error("a clean verdict refuses nothing");
  if (verdict.unscannable) return { reason: "unscannable", signature: verdict.signature, unscannable: verdict.unscannable };
  return { reason: "infected", signature: verdict.signature, ...(verdict.member ? { member: verdict.member } : {}) };
}
