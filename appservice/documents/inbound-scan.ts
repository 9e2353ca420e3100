// The scan of an inbound event: every media it references, one after the other, each
// downloaded (and decrypted, for an encrypted attachment) and streamed to clamd. The event is
// clean only when every one of them is; the first that is not decides. What cannot be
// scanned counts as not clean: an attachment that cannot be decrypted or whose hash does not
// match, media the homeserver does not have, a malformed URI, more media than Kuvert scans
// per event, a file over the scanner's limit. A scanner that is down is not a verdict: the
// ScannerUnavailableError goes to the caller (the document is held).
import { HomeserverError, type Homeserver } from "../matrix/homeserver.ts";
import { decryptAttachment, readEncryptedFile, UndecryptableError, type Integrity } from "../e2ee/attachments.ts";
import { downloadMedia } from "../matrix/media.ts";
import { maxReferencesPerEvent, type MediaReference } from "../matrix/references.ts";
import { TooLargeToScanError, type Scanner, type Unscannable } from "../scanning/scanner.ts";

/** Why media could not be scanned; "archive": the archive policy refused it (the verdict has which rule). */
export type UnscannableWhy = "too-large-to-scan" | "undecryptable" | "media-missing" | "bad-reference" | "too-many-media" | "archive";

export type InboundVerdict = { kind: "clean"; scanned: number; durationMs: number } | { kind: "infected"; signature: string; path: string; member?: string } | { kind: "unscannable"; why: UnscannableWhy; path: string | null; detail: string; archive?: Unscannable };

const wellFormedMxc = /^mxc:\/\/[^/]+\/[A-Za-z0-9_-]+$/;

/** The homeserver says this media is not there (or not to be had): nothing to wait for. */
function isMissing(err: unknown): boolean {
  return err instanceof HomeserverError && (err.status === 404 || err.errcode === "M_NOT_FOUND" || err.errcode === "M_NOT_YET_UPLOADED" || err.errcode === "K_BAD_MXC");
}

async function scanOne(hs: Homeserver, scanner: Scanner, ref: MediaReference): Promise<InboundVerdict & { durationMs?: number }> {
  if (!wellFormedMxc.test(ref.mxc)) return { kind: "unscannable", why: "bad-reference", path: ref.path, detail: "not a well-formed mxc: URI" };
  let secrets;
  if (ref.encrypted) {
    try {
      secrets = readEncryptedFile(ref.encrypted);
    } catch (err) {
      if (err instanceof UndecryptableError) return { kind: "unscannable", why: "undecryptable", path: ref.path, detail: err.message };
      throw err;
    }
  }
  let media;
  try {
    media = await downloadMedia(hs, ref.mxc);
  } catch (err) {
    if (isMissing(err)) return { kind: "unscannable", why: "media-missing", path: ref.path, detail: (err as Error).message };
    throw err;
  }
  let stream = media.stream;
  let integrity: () => Integrity = () => "intact";
  if (secrets) ({ plaintext: stream, integrity } = decryptAttachment(media.stream, secrets));
  try {
    const verdict = await scanner.scan(stream, media.size ?? undefined);
    if (!verdict.clean && verdict.unscannable) return { kind: "unscannable", why: "archive", path: ref.path, detail: verdict.unscannable.message, archive: verdict.unscannable };
    if (!verdict.clean) return { kind: "infected", signature: verdict.signature, path: ref.path, ...(verdict.member ? { member: verdict.member } : {}) };
    const intact = integrity();
    if (intact !== "intact") return { kind: "unscannable", why: "undecryptable", path: ref.path, detail: `the attachment's SHA-256 does not match (${intact})` };
    return { kind: "clean", scanned: 1, durationMs: verdict.durationMs };
  } catch (err) {
    if (err instanceof TooLargeToScanError) return { kind: "unscannable", why: "too-large-to-scan", path: ref.path, detail: err.message };
    throw err;
  } finally {
    if (!stream.destroyed) stream.destroy();
  }
}

/** Scans every media reference; answers the first verdict that is not clean, or clean. Throws ScannerUnavailableError. */
export async function scanInboundMedia(hs: Homeserver, scanner: Scanner, refs: MediaReference[]): Promise<InboundVerdict> {
  if (refs.length > maxReferencesPerEvent) {
    return { kind: "unscannable", why: "too-many-media", path: null, detail: `${refs.length} media references, more than the ${maxReferencesPerEvent} scanned per event` };
  }
  let durationMs = 0;
  for (const ref of refs) {
    const verdict = await scanOne(hs, scanner, ref);
    if (verdict.kind !== "clean") return verdict;
    durationMs += verdict.durationMs;
  }
  return { kind: "clean", scanned: refs.length, durationMs: Math.round(durationMs * 10) / 10 };
}
