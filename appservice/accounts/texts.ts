// What the password letter and the account e-mails say, in German (default) and English.
import type { Language } from "../i18n.ts";

export interface LetterTexts {
  confidential: string;
  subject: string;
  greeting(name: string): string;
  intro(sender: string, organisations: string): string;
  introReset(sender: string, organisations: string): string;
  username: string;
  password: string;
  signInAt: string;
  passwordNote: string;
  stepsTitle: string;
  steps(signInUrl: string, keyBackup: boolean): string[];
  separateChannels: string;
  closing: string;
  date(d: Date): string;
  page(n: number, of: number): string;
}

export interface AccountMailTexts {
  subject(kind: "created" | "reset"): string;
  greeting: string;
  body(kind: "created" | "reset", organisation: string | undefined): string;
  username: string;
  signIn: string;
  noPassword(kind: "created" | "reset"): string;
  footer: string;
}

const deLetter: LetterTexts = {
  confidential: "Persönlich – vertraulich",
  subject: "Ihr Zugang zum Kuvert-Raum Ihrer Organisation",
  greeting: (name) => `Guten Tag ${name},`,
  intro: (sender, orgs) => `${sender} hat für Sie ein Konto eingerichtet, mit dem Sie im Raum von ${orgs} Dokumente empfangen, Fragen stellen und Dokumente für uns hochladen. Sie melden sich mit den folgenden Zugangsdaten an:`,
  introReset: (sender, orgs) => `${sender} hat das Passwort Ihres Kontos für den Raum von ${orgs} zurückgesetzt; das bisherige Passwort gilt nicht mehr. Sie melden sich jetzt mit diesen Zugangsdaten an:`,
  username: "Benutzername",
  password: "Anfangspasswort",
  signInAt: "Anmeldung unter",
  passwordNote: "Bitte achten Sie beim Abtippen auf Groß- und Kleinschreibung. Bewahren Sie diesen Brief nicht offen auf und vernichten Sie ihn, sobald Sie Ihr Passwort geändert haben.",
  stepsTitle: "Erste Schritte",
  steps: (url, keyBackup) => [
    `Öffnen Sie ${url} im Browser (oder die App Element) und melden Sie sich mit Benutzername und Anfangspasswort an.`,
    "Ändern Sie das Passwort sofort: Einstellungen → Sicherheit & Datenschutz (bzw. Konto) → Passwort ändern. Wählen Sie ein Passwort, das Sie nirgends sonst verwenden.",
    ...(keyBackup ? ["Richten Sie die Schlüsselsicherung ein, wenn Element Sie dazu auffordert (Einstellungen → Sicherheit & Datenschutz → Sichere Sicherung), und bewahren Sie den Wiederherstellungsschlüssel sicher auf."] : []),
    "Nehmen Sie die Einladung in den Raum Ihrer Organisation an. Dort finden Sie alles Weitere; „!help“ zeigt, was Kuvert kann.",
  ],
  separateChannels: "Den Link zur Anmeldung und Ihren Benutzernamen haben Sie zusätzlich per E-Mail erhalten. Das Passwort senden wir aus Sicherheitsgründen nur mit diesem Brief, nie per E-Mail.",
  closing: "Mit freundlichen Grüßen",
  date: (d) => d.toLocaleDateString("de-DE", { day: "2-digit", month: "long", year: "numeric", timeZone: "Europe/Berlin" }),
  page: (n, of) => `Seite ${n} von ${of}`,
};

const enLetter: LetterTexts = {
  confidential: "Personal – confidential",
  subject: "Your access to your organisation's Kuvert room",
  greeting: (name) => `Dear ${name},`,
  intro: (sender, orgs) => `${sender} has set up an account for you, with which you receive documents, ask questions and upload documents for us in the room of ${orgs}. You sign in with the following details:`,
  introReset: (sender, orgs) => `${sender} has reset the password of your account for the room of ${orgs}; the previous password no longer works. You now sign in with these details:`,
  username: "Username",
  password: "Initial password",
  signInAt: "Sign in at",
  passwordNote: "Mind upper and lower case when typing it. Do not leave this letter lying around, and destroy it once you have changed your password.",
  stepsTitle: "First steps",
  steps: (url, keyBackup) => [
    `Open ${url} in your browser (or the Element app) and sign in with the username and initial password.`,
    "Change the password at once: Settings → Security & Privacy (or Account) → Change password. Choose a password you use nowhere else.",
    ...(keyBackup ? ["Set up key backup when Element asks you to (Settings → Security & Privacy → Secure Backup), and keep the recovery key safe."] : []),
    'Accept the invitation to your organisation\'s room. You find everything else there; "!help" shows what Kuvert can do.',
  ],
  separateChannels: "You also received the sign-in link and your username by e-mail. For security, the password is sent only with this letter, never by e-mail.",
  closing: "Kind regards",
  date: (d) => d.toLocaleDateString("en-GB", { day: "numeric", month: "long", year: "numeric", timeZone: "Europe/Berlin" }),
  page: (n, of) => `Page ${n} of ${of}`,
};

const deMail: AccountMailTexts = {
  subject: (kind) => (kind === "reset" ? "Ihr Kuvert-Passwort wurde zurückgesetzt" : "Ihr Zugang zu Kuvert ist eingerichtet"),
  greeting: "Guten Tag,",
  body: (kind, org) => (kind === "reset" ? "das Passwort Ihres Kuvert-Kontos wurde zurückgesetzt. Das bisherige Passwort gilt nicht mehr." : `für Sie wurde ein Konto eingerichtet, mit dem Sie ${org ? `im Kuvert-Raum von ${org}` : "in Ihrem Kuvert-Raum"} Dokumente austauschen.`),
  username: "Ihr Benutzername",
  signIn: "Hier melden Sie sich an",
  noPassword: (kind) => `${kind === "reset" ? "Ein neues Anfangspasswort" : "Ihr Anfangspasswort"} erhalten Sie getrennt per Brief. Aus Sicherheitsgründen senden wir Passwörter nie per E-Mail.`,
  footer: "Diese Nachricht wurde automatisch von Kuvert versandt. Bitte antworten Sie nicht auf diese E-Mail.",
};

const enMail: AccountMailTexts = {
  subject: (kind) => (kind === "reset" ? "Your Kuvert password was reset" : "Your Kuvert access is set up"),
  greeting: "Hello,",
  body: (kind, org) => (kind === "reset" ? "the password of your Kuvert account was reset. The previous password no longer works." : `an account was set up for you, with which you exchange documents ${org ? `in the Kuvert room of ${org}` : "in your Kuvert room"}.`),
  username: "Your username",
  signIn: "Sign in here",
  noPassword: (kind) => `${kind === "reset" ? "A new initial password" : "Your initial password"} comes separately by letter. For security, passwords are never sent by e-mail.`,
  footer: "This message was sent automatically by Kuvert. Please do not reply to this e-mail.",
};

export function letterTexts(language: Language): LetterTexts {
  return language === "en" ? enLetter : deLetter;
}

export function accountMailTexts(language: Language): AccountMailTexts {
  return language === "en" ? enMail : deMail;
}

/** The staff alert when an account cannot be created. */
export function accountFailedAlert(language: Language, matrixId: string, organisationId: string, reason: string): string {
  return language === "en"
    ? `The account ${matrixId} for a clerk of ${organisationId} could not be created: ${reason}. The clerk is not invited until it is sorted out (kuvert account list).`
    : `Das Konto ${matrixId} für die Sachbearbeitung von ${organisationId} konnte nicht angelegt werden: ${reason}. Bis das geklärt ist, wird niemand eingeladen (kuvert account list).`;
}
