// What Kuvert says about documents: in rooms, to staff, in the status API.
import { escapeHtml, type Language } from "../i18n.ts";
import type { Unscannable } from "../scanning/scanner.ts";
import { unscannableReason } from "../scanning/texts.ts";
import type { UnscannableWhy } from "./inbound-scan.ts";

interface Announced {
  filename: string;
  kind: string | null;
  reference: string | null;
  submitted_by: string;
}

function sender(submittedBy: string): string {
  return submittedBy.startsWith("token:") ? submittedBy.slice("token:".length) : submittedBy;
}

/** The day a version was delivered, as people write it (Europe/Berlin, the operating body's time). */
function day(iso: string | Date | null, language: Language): string {
  if (!iso) return "?";
  return new Date(iso).toLocaleDateString(language === "en" ? "en-GB" : "de-DE", { day: "numeric", month: "long", year: "numeric", timeZone: "Europe/Berlin" });
}

/** What a version is called in a text: its kind, else its file name. */
function title(d: { kind: string | null; filename: string }): string {
  return d.kind ?? d.filename;
}

interface Versioned extends Announced {
  version: number;
}

interface Replaced {
  filename: string;
  kind: string | null;
  version: number;
  finished_at: string | Date | null;
}

function mib(bytes: number): string {
  return `${Math.floor(bytes / (1024 * 1024))} MiB`;
}

const de = {
  untitled: "Dokument",
  notChecked: "Hinweis: Dateien, die in diesem Raum geteilt werden, prüft Kuvert hier nicht auf Viren (abgeschaltet).",
  held: "Der Virenscanner ist nicht erreichbar; das Dokument wartet und wird zugestellt, sobald es geprüft ist.",
  heldUntrusted: "Der Virenscanner ist so eingestellt, dass er Schadsoftware durchlassen könnte; das Dokument wartet, bis er richtig eingestellt ist (das Team ist informiert).",
  tooLarge: (limit: number) => `Die Datei ist größer als die ${mib(limit)}, die der Virenscanner prüft; ungeprüft wird nichts zugestellt.`,
  infected: (signature: string) => `Der Virenscanner hat Schadsoftware gefunden (${signature}).`,
  unscannable: (why: Unscannable["reason"]) => `Die Datei kann nicht vollständig auf Viren geprüft werden (KUVERT_UNSCANNABLE): ${unscannableReason.de[why]}`,
  heldForStaff: (why: Unscannable["reason"]) => `Die Datei kann nicht vollständig auf Viren geprüft werden (KUVERT_UNSCANNABLE): ${unscannableReason.de[why]} Sie wird nicht zugestellt und wartet auf das Team.`,
  rejectedAlert: (filename: string, org: string, reason: string) => `Dokument „${filename}“ für ${org} wurde nicht zugestellt und gelöscht: ${reason}`,
  rejectedMail: (id: string, org: string, reason: string) => `Dokument ${id} für ${org} wurde nicht zugestellt und gelöscht: ${reason} Den Dateinamen nennt der Raum der Mitarbeitenden.`,
  heldAlert: (id: string, org: string, reason: string) => `Dokument ${id} für ${org} wurde angehalten: ${reason}`,
  stuck: (id: string, why: string) => `Dokument ${id} konnte nicht verarbeitet werden und wurde zurückgestellt: ${why}`,
  failedReason: (why: string) => `nicht verarbeitet: ${why}`,
  announcement: (d: Announced) => {
    const parts = [d.kind ? `Neues Dokument: ${d.kind}` : "Neues Dokument", d.reference ? `Aktenzeichen ${d.reference}` : null, `von ${sender(d.submitted_by)}`].filter(Boolean);
    return { body: `${parts.join(" · ")} – geprüft auf Viren.`, html: `${parts.map((p) => escapeHtml(p!)).join(" · ")} – geprüft auf Viren.` };
  },
  unscannableMedia: (why: Exclude<UnscannableWhy, "archive">) =>
    ({
      "too-large-to-scan": "Eine Datei darin ist größer, als der Virenscanner prüft; ungeprüft bleibt nichts im Raum.",
      undecryptable: "Ein verschlüsselter Anhang ließ sich nicht entschlüsseln und damit nicht prüfen; ungeprüft bleibt nichts im Raum.",
      "media-missing": "Eine darin verwiesene Datei liegt nicht auf dem Server und ließ sich nicht prüfen; ungeprüft bleibt nichts im Raum.",
      "bad-reference": "Ein Verweis auf eine Datei darin ist ungültig und ließ sich nicht prüfen; ungeprüft bleibt nichts im Raum.",
      "too-many-media": "Die Nachricht verweist auf mehr Dateien, als Kuvert je Nachricht prüft; ungeprüft bleibt nichts im Raum.",
    })[why],
  mediaInMessage: "Bild in einer Nachricht",
  /** The short text of a new version, posted as a reply to the file it replaces. */
  versionAnnouncement: (d: Versioned, replaced: Replaced) => {
    const parts = [`Version ${d.version} von ${title(d)}`, d.reference ? `Aktenzeichen ${d.reference}` : null, `von ${sender(d.submitted_by)}`].filter(Boolean);
    const tail = `ersetzt die Fassung vom ${day(replaced.finished_at, "de")} – geprüft auf Viren.`;
    return { body: `${parts.join(" · ")}, ${tail}`, html: `${parts.map((p) => escapeHtml(p!)).join(" · ")}, ${escapeHtml(tail)}` };
  },
  /** The earlier announcement, edited once a new version is there. */
  replacedAnnouncement: (old: Announced & { version: number }, by: { version: number; filename: string }, link: string) => {
    const head = `Ersetzt: ${title(old)} (Version ${old.version})${old.reference ? ` · Aktenzeichen ${old.reference}` : ""} gilt nicht mehr.`;
    const tail = `Gültig ist Version ${by.version}: „${by.filename}“.`;
    return { body: `${head} ${tail}`, html: `<del>${escapeHtml(head)}</del> ${escapeHtml(tail)} <a href="${escapeHtml(link)}">Zur neuen Version</a>` };
  },
  /** The line in the clerks' e-mail about a new version. */
  newVersionTitle: (kind: string | null, version: number) => `${kind ?? "Dokument"} – eine neue Fassung (Version ${version})`,
  checkedReaction: "✅ geprüft",
  removedReason: "Schadsoftware gefunden",
  removedInRoom: (filename: string, reason: string) => `Die Datei „${filename}“ wurde entfernt: ${reason} Bitte senden Sie eine saubere Fassung.`,
  removedAlert: (filename: string, org: string, reason: string) => `Datei „${filename}“ im Raum von ${org} wurde entfernt: ${reason}`,
  removedMail: (id: string, org: string, reason: string) => `Eine Datei im Raum von ${org} wurde entfernt (${id}): ${reason} Den Dateinamen nennt der Raum der Mitarbeitenden.`,
};

const en: typeof de = {
  untitled: "Document",
  notChecked: "Note: Kuvert does not scan files shared in this room for viruses here (switched off).",
  held: "The virus scanner cannot be reached; the document waits and is delivered once it has been checked.",
  heldUntrusted: "The virus scanner is configured so that it could let malware through; the document waits until it is configured right (staff have been told).",
  tooLarge: (limit: number) => `The file is larger than the ${mib(limit)} the virus scanner checks; nothing is delivered unchecked.`,
  infected: (signature: string) => `The virus scanner found malware (${signature}).`,
  unscannable: (why: Unscannable["reason"]) => `The file cannot be scanned for viruses whole (KUVERT_UNSCANNABLE): ${unscannableReason.en[why]}`,
  heldForStaff: (why: Unscannable["reason"]) => `The file cannot be scanned for viruses whole (KUVERT_UNSCANNABLE): ${unscannableReason.en[why]} It is not delivered and waits for staff.`,
  rejectedAlert: (filename: string, org: string, reason: string) => `Document "${filename}" for ${org} was not delivered and was deleted: ${reason}`,
  rejectedMail: (id: string, org: string, reason: string) => `Document ${id} for ${org} was not delivered and was deleted: ${reason} The staff room names the file.`,
  heldAlert: (id: string, org: string, reason: string) => `Document ${id} for ${org} is held: ${reason}`,
  stuck: (id: string, why: string) => `Document ${id} could not be processed and was set aside: ${why}`,
  failedReason: (why: string) => `not processed: ${why}`,
  announcement: (d: Announced) => {
    const parts = [d.kind ? `New document: ${d.kind}` : "New document", d.reference ? `reference ${d.reference}` : null, `from ${sender(d.submitted_by)}`].filter(Boolean);
    return { body: `${parts.join(" · ")} – scanned for viruses.`, html: `${parts.map((p) => escapeHtml(p!)).join(" · ")} – scanned for viruses.` };
  },
  unscannableMedia: (why: Exclude<UnscannableWhy, "archive">) =>
    ({
      "too-large-to-scan": "A file in it is larger than the virus scanner checks; nothing unchecked stays in the room.",
      undecryptable: "An encrypted attachment could not be decrypted, so it could not be checked; nothing unchecked stays in the room.",
      "media-missing": "A file it refers to is not on the server and could not be checked; nothing unchecked stays in the room.",
      "bad-reference": "A reference to a file in it is not valid and could not be checked; nothing unchecked stays in the room.",
      "too-many-media": "The message refers to more files than Kuvert checks per message; nothing unchecked stays in the room.",
    })[why],
  mediaInMessage: "image in a message",
  versionAnnouncement: (d: Versioned, replaced: Replaced) => {
    const parts = [`Version ${d.version} of ${title(d)}`, d.reference ? `reference ${d.reference}` : null, `from ${sender(d.submitted_by)}`].filter(Boolean);
    const tail = `replaces the version of ${day(replaced.finished_at, "en")} – scanned for viruses.`;
    return { body: `${parts.join(" · ")}, ${tail}`, html: `${parts.map((p) => escapeHtml(p!)).join(" · ")}, ${escapeHtml(tail)}` };
  },
  replacedAnnouncement: (old: Announced & { version: number }, by: { version: number; filename: string }, link: string) => {
    const head = `Replaced: ${title(old)} (version ${old.version})${old.reference ? ` · reference ${old.reference}` : ""} is no longer valid.`;
    const tail = `Version ${by.version} is the valid one: "${by.filename}".`;
    return { body: `${head} ${tail}`, html: `<del>${escapeHtml(head)}</del> ${escapeHtml(tail)} <a href="${escapeHtml(link)}">Go to the new version</a>` };
  },
  newVersionTitle: (kind: string | null, version: number) => `${kind ?? "Document"} – a new version (version ${version})`,
  checkedReaction: "✅ checked",
  removedReason: "Malware found",
  removedInRoom: (filename: string, reason: string) => `The file "${filename}" was removed: ${reason} Please send a clean copy.`,
  removedAlert: (filename: string, org: string, reason: string) => `File "${filename}" in the room of ${org} was removed: ${reason}`,
  removedMail: (id: string, org: string, reason: string) => `A file in the room of ${org} was removed (${id}): ${reason} The staff room names the file.`,
};

export type DocumentTexts = typeof de;

export function documentTexts(language: Language): DocumentTexts {
  return language === "en" ? en : de;
}
