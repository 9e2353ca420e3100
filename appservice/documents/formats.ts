// Versions of the file formats back-office systems write: the batch manifest and the drop
// folder's description files. A file without a version is read as the current version, so
// producers written before the field existed keep working; a version this Kuvert does not
// know is refused with a sentence, never guessed.
import { KuvertError } from "../errors.ts";
import { DocumentErr } from "./errors.ts";

/** The version of the batch manifest and drop-folder formats this Kuvert writes and reads. */
export const FORMAT_VERSION = 1;

/** Checks a format's version field (absent: the current version); throws when it is one this Kuvert does not read. */
export function checkFormatVersion(found: unknown, what: string): void {
  if (found === undefined || found === null || found === "") return;
  if (found === FORMAT_VERSION || found === String(FORMAT_VERSION)) return;
  throw new KuvertError(DocumentErr.FormatVersion, `${what} says version ${JSON.stringify(found)}; this Kuvert reads version ${FORMAT_VERSION} (and files without a version). Write version ${FORMAT_VERSION}, or update Kuvert to one that reads the newer format.`, [
    { path: "version", message: `expected ${FORMAT_VERSION} or nothing` },
  ]);
}
