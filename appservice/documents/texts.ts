// What Kuvert says about documents: in rooms, to staff, in the status API.
import { escapeHtml, type Language } from "../i18n.ts";

interface Announced {
  filename: string;
  kind: string | null;
  reference: string | null;
  submitted_by: string;
}

function sender(submittedBy: string): string {
  return submittedBy.startsWith("token:") ? submittedBy.slice("token:".length) : submittedBy;
}

function mib(bytes: number): string {
  return `${Math.floor(bytes / (1024 * 1024))} MiB`;
}

const de = {
  untitled: "Dokument",
  notChecked: "Hinweis: Dateien, die in diesem Raum geteilt werden, prüft Kuvert hier nicht auf Viren (abgeschaltet).",
  held: "Der Virenscanner ist nicht erreichbar; das Dokument wartet und wird zugestellt, sobald es geprüft ist.",
  tooLarge: (limit: number) => `Die Datei ist größer als die ${mib(limit)}, die der Virenscanner prüft; ungeprüft wird nichts zugestellt.`,
  infected: (signature: string) => `Der Virenscanner hat Schadsoftware gefunden (${signature}).`,
  rejectedAlert: (filename: string, org: string, reason: string) => `Dokument „${filename}“ für ${org} wurde nicht zugestellt und gelöscht: ${reason}`,
  rejectedMail: (id: string, org: string, reason: string) => `Dokument ${id} für ${org} wurde nicht zugestellt und gelöscht: ${reason} Den Dateinamen nennt der Raum der Mitarbeitenden.`,
  stuck: (id: string, why: string) => `Dokument ${id} konnte nicht verarbeitet werden und wurde zurückgestellt: ${why}`,
  failedReason: (why: string) => `nicht verarbeitet: ${why}`,
  announcement: (d: Announced) => {
    const parts = [d.kind ? `Neues Dokument: ${d.kind}` : "Neues Dokument", d.reference ? `Aktenzeichen ${d.reference}` : null, `von ${sender(d.submitted_by)}`].filter(Boolean);
    return { body: `${parts.join(" · ")} – geprüft auf Viren.`, html: `${parts.map((p) => escapeHtml(p!)).join(" · ")} – geprüft auf Viren.` };
  },
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
  tooLarge: (limit: number) => `The file is larger than the ${mib(limit)} the virus scanner checks; nothing is delivered unchecked.`,
  infected: (signature: string) => `The virus scanner found malware (${signature}).`,
  rejectedAlert: (filename: string, org: string, reason: string) => `Document "${filename}" for ${org} was not delivered and was deleted: ${reason}`,
  rejectedMail: (id: string, org: string, reason: string) => `Document ${id} for ${org} was not delivered and was deleted: ${reason} The staff room names the file.`,
  stuck: (id: string, why: string) => `Document ${id} could not be processed and was set aside: ${why}`,
  failedReason: (why: string) => `not processed: ${why}`,
  announcement: (d: Announced) => {
    const parts = [d.kind ? `New document: ${d.kind}` : "New document", d.reference ? `reference ${d.reference}` : null, `from ${sender(d.submitted_by)}`].filter(Boolean);
    return { body: `${parts.join(" · ")} – scanned for viruses.`, html: `${parts.map((p) => escapeHtml(p!)).join(" · ")} – scanned for viruses.` };
  },
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
