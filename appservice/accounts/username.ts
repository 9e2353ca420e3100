// Usernames (Matrix ID localparts) for new clerk accounts. Allowed: the characters of the spec's
// Appendices §"User Identifiers" (a-z 0-9 . _ = - / +); like Synapse's check_username, not
// starting with "_" and not only digits (those are kept for guests).
import { KuvertError } from "../errors.ts";
import { AccountErr } from "./errors.ts";

export const localpartPattern = /^[a-z0-9._=\-/+]+$/;
/** Longest localpart Kuvert makes or accepts (a whole user ID may have 255 bytes). */
export const MAX_LOCALPART = 64;

const folds: Record<string, string> = { ä: "ae", ö: "oe", ü: "ue", ß: "ss", æ: "ae", œ: "oe", ø: "o", å: "a", ł: "l", đ: "d", ð: "d", þ: "th", ı: "i" };

/** Folds a name to ASCII the way German speakers spell it without umlauts: "Jörg Müller-Weiß" → "joerg.mueller-weiss". */
export function usernameFromName(name: string): string {
  const folded = [...name.trim().toLowerCase()]
    .map((ch) => folds[ch] ?? ch)
    .join("")
    .normalize("NFKD")
    .replace(/[\u0300-\u036f]/g, "")
    .toLowerCase();
  return folded
    .replace(/[\s,;:]+/g, ".")
    .replace(/[^a-z0-9.\-]/g, "")
    .replace(/([.\-])[.\-]+/g, "$1")
    .replace(/^[.\-_]+|[.\-]+$/g, "")
    .slice(0, MAX_LOCALPART - 3)
    .replace(/[.\-]+$/g, "");
}

/** Why a localpart cannot be a new account's, or null when it can. */
export function localpartProblem(localpart: string, reservedPrefix: string): string | null {
  if (localpart === "") return "it is empty";
  if (localpart.length > MAX_LOCALPART) return `it is longer than ${MAX_LOCALPART} characters`;
  if (!localpartPattern.test(localpart)) return "it may only contain a-z, 0-9 and . _ = - / +";
  if (localpart.startsWith("_")) return "it may not start with _";
  if (/^\d+$/.test(localpart)) return "it may not consist of digits only";
  if (localpart.startsWith(reservedPrefix)) return `names starting with ${reservedPrefix} belong to Kuvert itself`;
  return null;
}

/**
 * The localpart a preferred username asks for: a localpart, or a whole Matrix ID on this
 * server. Throws KUVERT_USERNAME_INVALID with the reason.
 */
export function preferredLocalpart(preferred: string, domain: string, reservedPrefix: string): string {
  let localpart = preferred.trim();
  if (localpart.startsWith("@")) {
    const colon = localpart.indexOf(":");
    if (colon < 0 || localpart.slice(colon + 1) !== domain) {
      throw new KuvertError(AccountErr.UsernameInvalid, `The username ${preferred} is not on this homeserver (${domain}); give a name like anna.beispiel.`);
    }
    localpart = localpart.slice(1, colon);
  }
  const problem = localpartProblem(localpart, reservedPrefix);
  if (problem) throw new KuvertError(AccountErr.UsernameInvalid, `The username ${preferred} cannot be used: ${problem}.`);
  return localpart;
}

/** Candidates for a derived username: the name, then the name with 2, 3, … appended. */
export function* derivedCandidates(name: string, email: string, max = 50): Generator<string> {
  let base = usernameFromName(name);
  if (base === "" || /^\d+$/.test(base)) base = usernameFromName(email.split("@")[0] ?? "");
  if (base === "" || /^\d+$/.test(base)) base = "clerk";
  yield base;
  for (let n = 2; n <= max; n++) yield `${base}${n}`;
}
