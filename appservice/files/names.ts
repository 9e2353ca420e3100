// File names from outside (the drop API, the console, the drop folder, batches, circular
// attachments): what a clerk's computer would misread, hide or refuse is refused with the reason.
import { ErrCode, KuvertError } from "../errors.ts";

// C0 and C1 controls, DEL, and the bidirectional overrides and isolates that make a name read
// differently from what it is (e.g. "invoice\u202Efdp.exe").
export const forbiddenCharacters = /[\u0000-\u001F\u007F-\u009F\u200E\u200F\u202A-\u202E\u2066-\u2069]/u;

// What a name must not hold beyond that: every invisible format character (zero-width space,
// joiners, word joiner, soft hyphen, byte order mark, Arabic letter mark, tag characters: Unicode
// category Cf, which includes the bidi controls), line and paragraph separators, private-use and
// surrogate code points, and the Hangul fillers that render as blank.
const invisibleCharacters = /[\p{Cf}\p{Zl}\p{Zp}\p{Co}\p{Cs}\u115F\u1160\u3164\uFFA0]/u;

// Names Windows reserves for devices, with or without an extension ("aux.pdf" opens the AUX
// device, not a file); the superscript digits count as digits there.
const windowsReserved = /^(con|prn|aux|nul|com[0-9\u00B9\u00B2\u00B3]|lpt[0-9\u00B9\u00B2\u00B3]|conin\$|conout\$)$/i;

/** Checks a file name from outside; answers it unchanged or throws a KuvertError that says why. */
export function checkFilename(name: string | undefined): string {
  const fail = (why: string) => {
    throw new KuvertError(ErrCode.InvalidFilename, `The file name ${JSON.stringify(name ?? "")} is not accepted: ${why}.`, [{ path: "filename", message: why }]);
  };
  if (name === undefined || name.trim() === "") return fail("a file name is required");
  if (name.includes("/") || name.includes("\\")) fail("it contains a path separator");
  if (name === "." || name === ".." || name.split(".").every((p) => p === "")) fail("it is a path, not a name");
  if (name.includes("..")) fail('it contains ".."');
  if (forbiddenCharacters.test(name)) fail("it contains control or text-direction characters");
  if (invisibleCharacters.test(name)) fail("it contains invisible characters (such as a zero-width space)");
  if (name !== name.trim()) fail("it starts or ends with white space");
  if (name.endsWith(".")) fail("it ends with a dot, which Windows drops");
  if (windowsReserved.test(name.split(".")[0]!.trimEnd())) fail(`${name.split(".")[0]!.trimEnd().toUpperCase()} is a device name on Windows`);
  if (Buffer.byteLength(name, "utf8") > 255) fail("it is longer than 255 bytes");
  return name.normalize("NFC");
}
