// The common layout of Kuvert's notification e-mails, in German (default) and English, as plain
// text and HTML; each kind's wording comes from the domain that sends it. An e-mail only says that something is waiting and links into the room: it never carries
// a document, its content, or anyone's personal data beyond the titles and references the
// caller chose to list. Every value from outside is escaped in the HTML part and flattened
// to one line in the text part and the subject.
import { escapeHtml, type Language } from "../i18n.ts";

/**
 * What an e-mail is about: the kinds of notification e-mail, each declared by its domain, which
 * adds its entry here (`declare module "../mail/templates.ts" { interface NotificationKinds {
 * document: true } }`) and words it with defineNotificationKind (or, for a layout of its own,
 * registers a renderer with the outbox). The core's own kind is the staff alert.
 */
export interface NotificationKinds {
  alert: true;
}
export type NotificationKind = keyof NotificationKinds;

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

export interface MailContent {
  subject: string;
  text: string;
  html: string;
}

export interface NotificationMailInput {
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

/** How one kind of notification e-mail is worded in one language. */
export interface KindWording {
  subject(org: string | undefined, count: number, firstReason: string): string;
  /** The sentence before the list. */
  intro(org: string | undefined, count: number): string;
  /** The line before the room link (default: the common "open the room to see it"). */
  openRoom?(count: number): string;
}

/** A kind of notification e-mail in the common layout: its wording and how it combines. */
export interface NotificationTemplate {
  wording: Record<Language, KindWording>;
  /**
   * The notifications of this kind and of every kind naming the same group, to one recipient
   * about one room, are combined into one e-mail (default: the kind alone).
   */
  group?: string;
  /** The kind that words an e-mail combining several kinds of the group (default: the head's). */
  mixedAs?: NotificationKind;
  /** Whether the list names documents: the e-mail greets and adds that documents never come by e-mail. */
  documents?: boolean;
  /** An alert: no greeting, and the organisation named on a line of its own. */
  alert?: boolean;
}

/** The words every notification e-mail shares. */
interface CommonWording {
  greeting: string;
  openRoom(count: number): string;
  notInMail: string;
  organisation: string;
  reference: string;
  footer: string;
}

const common: Record<Language, CommonWording> = {
  de: {
    greeting: "Guten Tag,",
    openRoom: (count) => `Öffnen Sie den Raum, um ${count === 1 ? "es" : "sie"} anzusehen:`,
    notInMail: "Dokumente senden wir aus Sicherheitsgründen nicht per E-Mail; Sie finden sie nur im Raum.",
    organisation: "Organisation",
    reference: "Az.",
    footer: "Diese Nachricht wurde automatisch von Kuvert versandt. Bitte antworten Sie nicht auf diese E-Mail.",
  },
  en: {
    greeting: "Hello,",
    openRoom: (count) => `Open the room to see ${count === 1 ? "it" : "them"}:`,
    notInMail: "For security, documents are never sent by e-mail; you find them only in the room.",
    organisation: "Organisation",
    reference: "ref.",
    footer: "This message was sent automatically by Kuvert. Please do not reply to this e-mail.",
  },
};

const templates = new Map<NotificationKind, NotificationTemplate>();

/** Words a kind of notification e-mail in the common layout (called once, where its domain declares the kind). */
export function defineNotificationKind(kind: NotificationKind, template: NotificationTemplate): NotificationKind {
  if (templates.has(kind)) throw new Error(`the e-mail kind ${kind} is defined twice`);
  templates.set(kind, template);
  return kind;
}

/** The template of a kind; undefined when none was defined (a renderer of its own words it, or nothing does). */
export function notificationTemplate(kind: NotificationKind): NotificationTemplate | undefined {
  return templates.get(kind);
}

/** Which notifications combine into one e-mail: the kind's group, or the kind itself. */
export function notificationGroup(kind: NotificationKind): string {
  return templates.get(kind)?.group ?? kind;
}

/** Staff alerts: what needs attention, to the staff's mailbox. */
defineNotificationKind("alert", {
  alert: true,
  wording: {
    de: {
      subject: (_org, count, firstReason) => (count === 1 ? `Kuvert-Warnung: ${firstReason}` : `Kuvert-Warnungen (${count})`),
      intro: (_org, count) => (count === 1 ? "Kuvert meldet ein Problem, das Aufmerksamkeit braucht:" : `Kuvert meldet ${count} Probleme, die Aufmerksamkeit brauchen:`),
      openRoom: () => "Zum Raum:",
    },
    en: {
      subject: (_org, count, firstReason) => (count === 1 ? `Kuvert alert: ${firstReason}` : `Kuvert alerts (${count})`),
      intro: (_org, count) => (count === 1 ? "Kuvert reports a problem that needs attention:" : `Kuvert reports ${count} problems that need attention:`),
      openRoom: () => "Room:",
    },
  },
});

function itemParts(item: NotificationItem, w: CommonWording): { kind?: string; title: string; reference?: string; link?: string } {
  return {
    title: oneLine(item.title),
    ...(item.link && /^https?:\/\//.test(item.link) ? { link: oneLine(item.link, 4000) } : {}),
    ...(item.kind ? { kind: oneLine(item.kind, 100) } : {}),
    ...(item.reference ? { reference: `${w.reference} ${oneLine(item.reference, 100)}` } : {}),
  };
}

/** Subject, plain text and HTML of one notification e-mail (one or many combined notifications), in the template's wording. */
export function renderNotification(template: NotificationTemplate, input: NotificationMailInput): MailContent {
  const c = common[input.language];
  const w = template.wording[input.language];
  const openRoom = w.openRoom ?? c.openRoom;
  const org = input.organisationName ? oneLine(input.organisationName, 200) : undefined;
  const count = input.items.length;
  const firstReason = input.items[0] ? oneLine(input.items[0].title, 120) : "";
  const greeting = template.alert ? "" : `${c.greeting}\n\n`;
  const greetingHtml = template.alert ? "" : `<p>${c.greeting}</p>`;
  const items = input.items.map((item) => itemParts(item, c));

  const text: string[] = [`${greeting}${w.intro(org, count)}`, ""];
  for (const i of items) text.push(`- ${i.kind ? `${i.kind}: ` : ""}${i.title}${i.reference ? ` (${i.reference})` : ""}`, ...(i.link ? [`  ${i.link}`] : []));
  if (template.alert && org) text.push("", `${c.organisation}: ${org}`);
  if (input.roomLink) text.push("", openRoom(count), input.roomLink);
  if (template.documents) text.push("", c.notInMail);
  text.push("", "-- ", c.footer);

  const html: string[] = [
    `<!DOCTYPE html><html lang="${input.language}"><head><meta charset="utf-8"></head><body>`,
    greetingHtml,
    `<p>${escapeHtml(w.intro(org, count))}</p>`,
    "<ul>",
    ...items.map((i) => `<li>${i.kind ? `${escapeHtml(i.kind)}: ` : ""}<strong>${escapeHtml(i.title)}</strong>${i.reference ? ` (${escapeHtml(i.reference)})` : ""}${i.link ? `<br><a href="${escapeHtml(i.link)}">${escapeHtml(i.link)}</a>` : ""}</li>`),
    "</ul>",
  ];
  if (template.alert && org) html.push(`<p>${escapeHtml(c.organisation)}: ${escapeHtml(org)}</p>`);
  if (input.roomLink) html.push(`<p>${escapeHtml(openRoom(count))} <a href="${escapeHtml(input.roomLink)}">${escapeHtml(input.roomLink)}</a></p>`);
  if (template.documents) html.push(`<p>${escapeHtml(c.notInMail)}</p>`);
  html.push(`<p style="color:#666">${escapeHtml(c.footer)}</p>`, "</body></html>");

  return { subject: oneLine(w.subject(org, count, firstReason), 200), text: `${text.join("\n")}\n`, html: html.join("\n") };
}
