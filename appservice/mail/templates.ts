// The e-mails Kuvert sends, in German (default) and English, as plain text and HTML.
// An e-mail only says that something is waiting and links into the room: it never carries
// a document, its content, or anyone's personal data beyond the titles and references the
// caller chose to list. Every value from outside is escaped in the HTML part and flattened
// to one line in the text part and the subject.
import { escapeHtml, type Language } from "../i18n.ts";

/** What an e-mail is about. The templates below word all but "account" (accounts/mail.ts words those, registered with the outbox). */
export type NotificationKind = "document" | "circular" | "inbound-file" | "alert" | "guest-link" | "account";

export interface NotificationItem {
  /** What is new, e.g. "Beitragsbescheid 2025": shown in the e-mail, so no personal data. */
  title: string;
  /** A reference the recipient acts on (Aktenzeichen). */
  reference?: string;
  /** Kind of document, e.g. "Rundschreiben". */
  kind?: string;
  /** A link the recipient opens (guest links: the guest page); shown under the title. */
  link?: string;
}

/** The kinds these templates word. */
export const templateKinds: ReadonlySet<NotificationKind> = new Set(["document", "circular", "inbound-file", "alert", "guest-link"]);

export interface MailContent {
  subject: string;
  text: string;
  html: string;
}

export interface NotificationMailInput {
  /** For document and circular batches: "circular" only when every notification is a circular. */
  kind: NotificationKind;
  language: Language;
  organisationName?: string | null | undefined;
  /** Link into the organisation's room; none for alerts that concern no room. */
  roomLink?: string | null | undefined;
  items: NotificationItem[];
}

/** The link into a room: the configured base (matrix.to or Element Web) and the room id. */
export function roomLink(base: string, roomId: string): string {
  return base + encodeURIComponent(roomId);
}

/** One line, no control characters: a title or name cannot add lines or headers. */
export function oneLine(value: string, max = 300): string {
  const flat = value
    .replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]+/g, " ")
    .replace(/\s+/g, " ")
    .trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

interface Wording {
  subject(kind: NotificationKind, org: string | undefined, count: number, firstReason: string): string;
  /** Sentence before the list. */
  intro(kind: NotificationKind, org: string | undefined, count: number): string;
  openRoom(kind: NotificationKind, count: number): string;
  notInMail: string;
  organisation: string;
  reference: string;
  footer: string;
}

const de: Wording = {
  subject(kind, org, count, firstReason) {
    switch (kind) {
      case "circular":
        return org ? `${count === 1 ? "Neues Rundschreiben" : "Neue Rundschreiben"} für ${org}` : "Neue Rundschreiben in Kuvert";
      case "inbound-file":
        return org ? `${count === 1 ? "Neues Dokument" : "Neue Dokumente"} von ${org}` : "Neue Dokumente in Kuvert";
      case "alert":
        return count === 1 ? `Kuvert-Warnung: ${firstReason}` : `Kuvert-Warnungen (${count})`;
      case "guest-link":
        return org ? `Einladung zur Videoberatung mit ${org}` : "Einladung zur Videoberatung";
      default:
        return org ? `${count === 1 ? "Neues Dokument" : "Neue Dokumente"} für ${org}` : "Neue Dokumente in Kuvert";
    }
  },
  intro(kind, org, count) {
    const room = org ? `im Kuvert-Raum von ${org}` : "in Ihrem Kuvert-Raum";
    switch (kind) {
      case "circular":
        return `${room} ${count === 1 ? "liegt ein neues Rundschreiben" : `liegen ${count} neue Rundschreiben`} für Sie bereit:`;
      case "inbound-file":
        return `${org ?? "Eine Organisation"} hat ${count === 1 ? "ein Dokument" : `${count} Dokumente`} in ihren Kuvert-Raum hochgeladen. Die Virenprüfung hat nichts gefunden.`;
      case "alert":
        return count === 1 ? "Kuvert meldet ein Problem, das Aufmerksamkeit braucht:" : `Kuvert meldet ${count} Probleme, die Aufmerksamkeit brauchen:`;
      case "guest-link":
        return `Sie sind zu einer Videoberatung${org ? ` mit ${org}` : ""} eingeladen. Öffnen Sie den Link zur vereinbarten Zeit im Browser; Sie brauchen nichts zu installieren. Der Link gilt nur für Sie und nur bis zur genannten Zeit:`;
      default:
        return `${room} ${count === 1 ? "liegt ein neues Dokument" : `liegen ${count} neue Dokumente`} für Sie bereit:`;
    }
  },
  openRoom: (kind, count) => (kind === "alert" ? "Zum Raum:" : `Öffnen Sie den Raum, um ${count === 1 ? "es" : "sie"} anzusehen:`),
  notInMail: "Dokumente senden wir aus Sicherheitsgründen nicht per E-Mail; Sie finden sie nur im Raum.",
  organisation: "Organisation",
  reference: "Az.",
  footer: "Diese Nachricht wurde automatisch von Kuvert versandt. Bitte antworten Sie nicht auf diese E-Mail.",
};

const en: Wording = {
  subject(kind, org, count, firstReason) {
    switch (kind) {
      case "circular":
        return org ? `${count === 1 ? "New circular" : "New circulars"} for ${org}` : "New circulars in Kuvert";
      case "inbound-file":
        return org ? `${count === 1 ? "New document" : "New documents"} from ${org}` : "New documents in Kuvert";
      case "alert":
        return count === 1 ? `Kuvert alert: ${firstReason}` : `Kuvert alerts (${count})`;
      case "guest-link":
        return org ? `Invitation to a video consultation with ${org}` : "Invitation to a video consultation";
      default:
        return org ? `${count === 1 ? "New document" : "New documents"} for ${org}` : "New documents in Kuvert";
    }
  },
  intro(kind, org, count) {
    const room = org ? `In the Kuvert room of ${org}` : "In your Kuvert room";
    switch (kind) {
      case "circular":
        return `${room}, ${count === 1 ? "a new circular is" : `${count} new circulars are`} waiting for you:`;
      case "inbound-file":
        return `${org ?? "An organisation"} uploaded ${count === 1 ? "a document" : `${count} documents`} in its Kuvert room. The virus scan found nothing.`;
      case "alert":
        return count === 1 ? "Kuvert reports a problem that needs attention:" : `Kuvert reports ${count} problems that need attention:`;
      case "guest-link":
        return `You are invited to a video consultation${org ? ` with ${org}` : ""}. Open the link in your browser at the agreed time; there is nothing to install. The link is for you only and valid only until the time given:`;
      default:
        return `${room}, ${count === 1 ? "a new document is" : `${count} new documents are`} waiting for you:`;
    }
  },
  openRoom: (kind, count) => (kind === "alert" ? "Room:" : `Open the room to see ${count === 1 ? "it" : "them"}:`),
  notInMail: "For security, documents are never sent by e-mail; you find them only in the room.",
  organisation: "Organisation",
  reference: "ref.",
  footer: "This message was sent automatically by Kuvert. Please do not reply to this e-mail.",
};

function wording(language: Language): Wording {
  return language === "en" ? en : de;
}

function itemParts(item: NotificationItem, w: Wording): { kind?: string; title: string; reference?: string; link?: string } {
  return {
    title: oneLine(item.title),
    ...(item.link && /^https?:\/\//.test(item.link) ? { link: oneLine(item.link, 4000) } : {}),
    ...(item.kind ? { kind: oneLine(item.kind, 100) } : {}),
    ...(item.reference ? { reference: `${w.reference} ${oneLine(item.reference, 100)}` } : {}),
  };
}

/** Subject, plain text and HTML of one notification e-mail (one or many combined notifications). */
export function renderNotification(input: NotificationMailInput): MailContent {
  const w = wording(input.language);
  const org = input.organisationName ? oneLine(input.organisationName, 200) : undefined;
  const count = input.items.length;
  const firstReason = input.items[0] ? oneLine(input.items[0].title, 120) : "";
  const greeting = input.kind === "alert" ? "" : input.language === "en" ? "Hello,\n\n" : "Guten Tag,\n\n";
  const greetingHtml = input.kind === "alert" ? "" : `<p>${input.language === "en" ? "Hello," : "Guten Tag,"}</p>`;
  const items = input.items.map((item) => itemParts(item, w));
  const showsDocuments = input.kind === "document" || input.kind === "circular";

  const text: string[] = [`${greeting}${w.intro(input.kind, org, count)}`, ""];
  for (const i of items) text.push(`- ${i.kind ? `${i.kind}: ` : ""}${i.title}${i.reference ? ` (${i.reference})` : ""}`, ...(i.link ? [`  ${i.link}`] : []));
  if (input.kind === "alert" && org) text.push("", `${w.organisation}: ${org}`);
  if (input.roomLink) text.push("", w.openRoom(input.kind, count), input.roomLink);
  if (showsDocuments) text.push("", w.notInMail);
  text.push("", "-- ", w.footer);

  const html: string[] = [
    `<!DOCTYPE html><html lang="${input.language}"><head><meta charset="utf-8"></head><body>`,
    greetingHtml,
    `<p>${escapeHtml(w.intro(input.kind, org, count))}</p>`,
    "<ul>",
    ...items.map((i) => `<li>${i.kind ? `${escapeHtml(i.kind)}: ` : ""}<strong>${escapeHtml(i.title)}</strong>${i.reference ? ` (${escapeHtml(i.reference)})` : ""}${i.link ? `<br><a href="${escapeHtml(i.link)}">${escapeHtml(i.link)}</a>` : ""}</li>`),
    "</ul>",
  ];
  if (input.kind === "alert" && org) html.push(`<p>${escapeHtml(w.organisation)}: ${escapeHtml(org)}</p>`);
  if (input.roomLink) html.push(`<p>${escapeHtml(w.openRoom(input.kind, count))} <a href="${escapeHtml(input.roomLink)}">${escapeHtml(input.roomLink)}</a></p>`);
  if (showsDocuments) html.push(`<p>${escapeHtml(w.notInMail)}</p>`);
  html.push(`<p style="color:#666">${escapeHtml(w.footer)}</p>`, "</body></html>");

  return { subject: oneLine(w.subject(input.kind, org, count, firstReason), 200), text: `${text.join("\n")}\n`, html: html.join("\n") };
}
