// What Kuvert says about circulars: in the staff room, in e-mails, in !help.
import { escapeHtml, type Language } from "../i18n.ts";
import type { Unscannable } from "../scanning/scanner.ts";
import { unscannableReason } from "../scanning/texts.ts";
import type { Summary } from "./store.ts";

function mib(bytes: number): string {
  return `${Math.floor(bytes / (1024 * 1024))} MiB`;
}

export interface ProgressView {
  id: string;
  state: string;
  total: number;
  summary: Summary;
  corrections: { revision: number; summary: Summary }[];
  failures: { organisationId: string; reason: string }[];
}

const de = {
  help: [
    ["!circular all | tag:<Tag> | org:<id>,<id> [at:<Zeit>]", "Rundschreiben senden: der Text (Markdown) in den Zeilen darunter; Dateien, die Sie kurz davor hier hochgeladen haben, gehen als Anlagen mit. at: z. B. 2026-12-01T08:00+01:00"],
    ["!circular status [<id>]", "Zustellung eines Rundschreibens (ohne id: die letzten)"],
    ["!circular cancel <id>", "ein geplantes Rundschreiben absagen, bevor es versandt wird"],
    ["!circular correct <id>", "Korrektur: der neue Text in den Zeilen darunter; erscheint in denselben Räumen als Bearbeitung"],
  ] as [string, string][],
  mailTitle: "Rundschreiben",
  moduleOff: "Rundschreiben sind in diesem Kuvert abgeschaltet (modules.circulars).",
  usage: "So geht es: „!circular tag:schulen“ in der ersten Zeile, der Text des Rundschreibens in den Zeilen darunter. „!help“ zeigt alles.",
  badWord: (w: string) => `„${w}“ verstehe ich nicht. Ziele: all, tag:<Tag>, org:<id>,<id>; Zeitpunkt: at:<Zeit>.`,
  noId: "Welches Rundschreiben? Bitte die id angeben, z. B. „!circular cancel circ_…“.",
  created: (id: string, count: number, attachments: number, scheduledAt: string | null) =>
    `Rundschreiben ${id} an ${count} Organisation${count === 1 ? "" : "en"}${attachments ? ` mit ${attachments} Anlage${attachments === 1 ? "" : "n"}` : ""}: ` +
    (scheduledAt ? `geplant für ${scheduledAt}. Absagen: „!circular cancel ${id}“.` : "wird geprüft und versandt; der Fortschritt erscheint hier."),
  cancelled: (id: string) => `Rundschreiben ${id} ist abgesagt; es wurde nichts versandt.`,
  corrected: (id: string, revision: number, rooms: number) => `Korrektur ${revision} von ${id} geht an die ${rooms} Räume, die das Rundschreiben erhalten haben.`,
  failed: (message: string) => `Das ging nicht: ${message}`,
  none: "Es gibt noch keine Rundschreiben.",
  stopped: (id: string, filename: string, reason: string) => `Rundschreiben ${id} wurde angehalten, bevor ein Raum es erhielt: die Anlage „${filename}“ ${reason}`,
  infected: (signature: string) => `enthält Schadsoftware (${signature}).`,
  unscannable: (why: Unscannable["reason"]) => `kann nicht vollständig auf Viren geprüft werden (KUVERT_UNSCANNABLE): ${unscannableReason.de[why]}`,
  tooLarge: (limit: number) => `ist größer als die ${mib(limit)}, die der Virenscanner prüft.`,
  unavailable: (why: string) => `ist auf dem Homeserver nicht mehr abrufbar (${why}).`,
  stoppedMail: (id: string, position: number, reason: string) => `Rundschreiben ${id} wurde angehalten, bevor ein Raum es erhielt: Anlage ${position + 1} ${reason} Den Dateinamen nennt der Raum der Mitarbeitenden.`,
  stoppedReason: (filename: string) => `angehalten: Anlage „${filename}“ nicht sauber oder nicht abrufbar`,
  notPrepared: (id: string, why: string) => `Rundschreiben ${id} wurde angehalten, bevor ein Raum es erhielt: die Anlagen ließen sich nicht auf den Homeserver bringen (${why}). Bitte prüfen und neu senden.`,
  notPreparedReason: (why: string) => `angehalten: Anlagen nicht hochladbar (${why})`,
  stateName: { scheduled: "geplant", scanning: "wird geprüft", sending: "wird versandt", sent: "versandt", cancelled: "abgesagt", stopped: "angehalten" } as Record<string, string>,
  progress: (p: ProgressView) => {
    const head = `Rundschreiben ${p.id} – ${de.stateName[p.state] ?? p.state}: ${p.summary.delivered} von ${p.total} zugestellt` + (p.summary.failed ? `, ${p.summary.failed} fehlgeschlagen` : "") + (p.summary.pending ? `, ${p.summary.pending} offen` : "");
    const lines = [head, ...p.corrections.map((c) => `Korrektur ${c.revision}: ${c.summary.delivered} zugestellt${c.summary.failed ? `, ${c.summary.failed} fehlgeschlagen` : ""}${c.summary.pending ? `, ${c.summary.pending} offen` : ""}`)];
    for (const f of p.failures) lines.push(`– ${f.organisationId}: ${f.reason}`);
    return lines;
  },
};

type CircularTexts = typeof de;

const en: CircularTexts = {
  help: [
    ["!circular all | tag:<tag> | org:<id>,<id> [at:<time>]", "send a circular: its text (Markdown) on the lines below; files you posted here just before go along as attachments. at: e.g. 2026-12-01T08:00Z"],
    ["!circular status [<id>]", "delivery of a circular (without id: the latest)"],
    ["!circular cancel <id>", "cancel a scheduled circular before it is sent"],
    ["!circular correct <id>", "a correction: the new text on the lines below; shown as an edit in the same rooms"],
  ],
  mailTitle: "Circular",
  moduleOff: "Circulars are switched off in this Kuvert (modules.circulars).",
  usage: 'Like this: "!circular tag:schools" on the first line, the circular\'s text on the lines below. "!help" shows everything.',
  badWord: (w) => `I do not understand "${w}". Targets: all, tag:<tag>, org:<id>,<id>; time: at:<time>.`,
  noId: 'Which circular? Give its id, e.g. "!circular cancel circ_…".',
  created: (id, count, attachments, scheduledAt) =>
    `Circular ${id} to ${count} organisation${count === 1 ? "" : "s"}${attachments ? ` with ${attachments} attachment${attachments === 1 ? "" : "s"}` : ""}: ` +
    (scheduledAt ? `scheduled for ${scheduledAt}. Cancel: "!circular cancel ${id}".` : "being checked and sent; progress appears here."),
  cancelled: (id) => `Circular ${id} is cancelled; nothing was sent.`,
  corrected: (id, revision, rooms) => `Correction ${revision} of ${id} goes to the ${rooms} rooms that got the circular.`,
  failed: (message) => `That did not work: ${message}`,
  none: "There are no circulars yet.",
  stopped: (id, filename, reason) => `Circular ${id} was stopped before any room got it: the attachment "${filename}" ${reason}`,
  infected: (signature) => `contains malware (${signature}).`,
  unscannable: (why) => `cannot be scanned for viruses whole (KUVERT_UNSCANNABLE): ${unscannableReason.en[why]}`,
  tooLarge: (limit) => `is larger than the ${mib(limit)} the virus scanner checks.`,
  unavailable: (why) => `can no longer be fetched from the homeserver (${why}).`,
  stoppedMail: (id, position, reason) => `Circular ${id} was stopped before any room got it: attachment ${position + 1} ${reason} The staff room names the file.`,
  stoppedReason: (filename) => `stopped: attachment "${filename}" not clean or not available`,
  notPrepared: (id, why) => `Circular ${id} was stopped before any room got it: its attachments could not be put on the homeserver (${why}). Please check and send it again.`,
  notPreparedReason: (why) => `stopped: attachments could not be uploaded (${why})`,
  stateName: { scheduled: "scheduled", scanning: "being checked", sending: "sending", sent: "sent", cancelled: "cancelled", stopped: "stopped" },
  progress: (p) => {
    const head = `Circular ${p.id} – ${en.stateName[p.state] ?? p.state}: ${p.summary.delivered} of ${p.total} delivered` + (p.summary.failed ? `, ${p.summary.failed} failed` : "") + (p.summary.pending ? `, ${p.summary.pending} pending` : "");
    const lines = [head, ...p.corrections.map((c) => `Correction ${c.revision}: ${c.summary.delivered} delivered${c.summary.failed ? `, ${c.summary.failed} failed` : ""}${c.summary.pending ? `, ${c.summary.pending} pending` : ""}`)];
    for (const f of p.failures) lines.push(`– ${f.organisationId}: ${f.reason}`);
    return lines;
  },
};

export function circularTexts(language: Language): CircularTexts {
  return language === "en" ? en : de;
}

/** The progress message as body and HTML (first line bold). */
export function progressMessage(language: Language, p: ProgressView): { body: string; html: string } {
  return linesMessage(circularTexts(language).progress(p));
}

/** Lines as a room message: the plain body, and HTML with the first line bold. */
export function linesMessage(lines: string[]): { body: string; html: string } {
  return {
    body: lines.join("\n"),
    html: `<p><strong>${escapeHtml(lines[0]!)}</strong>${lines
      .slice(1)
      .map((l) => `<br>${escapeHtml(l)}`)
      .join("")}</p>`,
  };
}
