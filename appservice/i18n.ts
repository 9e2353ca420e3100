// Texts Kuvert posts in rooms, and which language each audience gets. German by default,
// English selectable (organisations.language); e-mails and letters follow it unless told otherwise.
export type Language = "de" | "en";

export interface RoomTexts {
  topic(orgName: string): string;
  welcome(orgName: string): { body: string; html: string };
  helpIntro: string;
  helpSelf: string;
  helpUpload: string;
  archived(): string;
  unknownCommand(command: string): string;
  wrongRoom(command: string, staffRoom: boolean): string;
  notAllowed(command: string): string;
  removedReason: string;
  mailDead(id: string, attempts: number, error: string): string;
  powerLevelsRefused(organisationId: string, problem: string): string;
}

const de: RoomTexts = {
  topic: (org) => `Dokumentenaustausch mit ${org}. Neue Dokumente erscheinen hier; „!help“ zeigt, was Kuvert kann.`,
  welcome: (org) => ({
    body:
      `Willkommen im Raum von ${org}.\n\n` +
      `Hier erhalten Sie Dokumente und Rundschreiben, stellen Fragen und laden Dokumente für uns hoch. ` +
      `Alles, was hier geteilt wird, wird auf Viren geprüft. Nur die Sachbearbeitung Ihrer Organisation und unsere Mitarbeitenden sind in diesem Raum.\n\n` +
      `Befehle: !help zeigt die Hilfe.`,
    html:
      `<p>Willkommen im Raum von <strong>${escapeHtml(org)}</strong>.</p>` +
      `<p>Hier erhalten Sie Dokumente und Rundschreiben, stellen Fragen und laden Dokumente für uns hoch. ` +
      `Alles, was hier geteilt wird, wird auf Viren geprüft. Nur die Sachbearbeitung Ihrer Organisation und unsere Mitarbeitenden sind in diesem Raum.</p>` +
      `<p>Befehle: <code>!help</code> zeigt die Hilfe.</p>`,
  }),
  helpIntro: "Kuvert – Befehle in diesem Raum:",
  helpSelf: "diese Hilfe",
  helpUpload: "Dokumente laden Sie einfach als Datei in diesen Raum hoch.",
  wrongRoom: (c, staff) => (staff ? `„${c}“ gibt es nur im Raum der Mitarbeitenden.` : `„${c}“ gibt es nur in den Räumen der Organisationen.`),
  notAllowed: (c) => `„${c}“ dürfen nur Mitarbeitende mit der passenden Rolle verwenden.`,
  archived: () => "Diese Organisation wurde archiviert. Der Raum bleibt lesbar, neue Nachrichten sind nicht mehr möglich.",
  removedReason: "In Kuvert aus der Organisation entfernt",
  mailDead: (id, attempts, error) => `E-Mail ${id} konnte nach ${attempts} Versuchen nicht zugestellt werden: ${error}`,
  powerLevelsRefused: (org, problem) => `Im Raum von ${org} wurden die Berechtigungen von Hand geändert, und Kuvert kann sie nicht zurücksetzen. Der Raum funktioniert sonst weiter. Bitte in Element die Berechtigungen prüfen. (${problem})`,
  unknownCommand: (c) => `Den Befehl „${c}“ kenne ich nicht. „!help“ zeigt die verfügbaren Befehle.`,
};

const en: RoomTexts = {
  topic: (org) => `Document exchange with ${org}. New documents appear here; "!help" shows what Kuvert can do.`,
  welcome: (org) => ({
    body:
      `Welcome to the room of ${org}.\n\n` +
      `Here you receive documents and circulars, ask questions and upload documents for us. ` +
      `Everything shared here is scanned for viruses. Only your organisation's clerks and our staff are in this room.\n\n` +
      `Commands: !help shows the help.`,
    html:
      `<p>Welcome to the room of <strong>${escapeHtml(org)}</strong>.</p>` +
      `<p>Here you receive documents and circulars, ask questions and upload documents for us. ` +
      `Everything shared here is scanned for viruses. Only your organisation's clerks and our staff are in this room.</p>` +
      `<p>Commands: <code>!help</code> shows the help.</p>`,
  }),
  helpIntro: "Kuvert – commands in this room:",
  helpSelf: "this help",
  helpUpload: "To send us a document, upload it as a file in this room.",
  wrongRoom: (c, staff) => (staff ? `"${c}" works only in the staff room.` : `"${c}" works only in organisation rooms.`),
  notAllowed: (c) => `"${c}" is only for staff with the right role.`,
  archived: () => "This organisation has been archived. The room stays readable; new messages are no longer possible.",
  removedReason: "Removed from the organisation in Kuvert",
  mailDead: (id, attempts, error) => `E-mail ${id} could not be delivered after ${attempts} attempts: ${error}`,
  powerLevelsRefused: (org, problem) => `The permissions in the room of ${org} were changed by hand and Kuvert cannot set them back. The room otherwise keeps working. Please check its permissions in Element. (${problem})`,
  unknownCommand: (c) => `I don't know the command "${c}". "!help" shows the available commands.`,
};

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);
}

interface LanguageSettings {
  organisations: { language: Language };
  mail: { language?: Language | undefined };
  letters: { language?: Language | undefined };
}

/** The language of e-mails: the organisations' language unless mail.language says otherwise. */
export function mailLanguage(config: LanguageSettings): Language {
  return config.mail.language ?? config.organisations.language;
}

/** The language of password letters and account e-mails: the organisations' unless letters.language says otherwise. */
export function letterLanguage(config: LanguageSettings): Language {
  return config.letters.language ?? config.organisations.language;
}

export function texts(language: Language): RoomTexts {
  return language === "en" ? en : de;
}

/** A notice with a plain body and HTML (CS API §"m.notice", §"Rich replies"/formatted bodies). */
export function notice(message: { body: string; html?: string }): Record<string, unknown> {
  return message.html ? { msgtype: "m.notice", body: message.body, format: "org.matrix.custom.html", formatted_body: message.html } : { msgtype: "m.notice", body: message.body };
}
