// The account e-mail: the sign-in link and the username, never the password (that goes by letter).
import type { KuvertConfig } from "../config/schema.ts";
import { escapeHtml, letterLanguage, type Language } from "../i18n.ts";
import type { MailRenderer } from "../mail/outbox.ts";
import { oneLine, type MailContent, type NotificationItem } from "../mail/templates.ts";
import { accountMailTexts } from "./texts.ts";

declare module "../mail/templates.ts" {
  interface NotificationKinds {
    /** Worded by the renderer below, in a layout of its own (MailOutbox.renderWith). */
    account: true;
  }
}

/** Where clerks sign in: accounts.signInUrl, else the homeserver's public URL, else its URL. */
export function signInUrl(config: KuvertConfig): string {
  return config.accounts.signInUrl ?? config.homeserver.publicUrl ?? config.homeserver.url;
}

/** Items of an account e-mail: title = the Matrix ID, kind = "created" or "reset". */
export function renderAccountMail(input: { language: Language; organisationName?: string | null | undefined; signInUrl: string; items: NotificationItem[] }): MailContent {
  const t = accountMailTexts(input.language);
  const kind = input.items.some((i) => i.kind === "reset") ? "reset" : "created";
  const org = input.organisationName ? oneLine(input.organisationName, 200) : undefined;
  const usernames = [...new Set(input.items.map((i) => oneLine(i.title, 255)))];
  const text = [t.greeting, "", t.body(kind, org), "", `${t.username}: ${usernames.join(", ")}`, "", `${t.signIn}:`, input.signInUrl, "", t.noPassword(kind), "", "-- ", t.footer].join("\n");
  const html = [
    `<!DOCTYPE html><html lang="${input.language}"><head><meta charset="utf-8"></head><body>`,
    `<p>${escapeHtml(t.greeting)}</p>`,
    `<p>${escapeHtml(t.body(kind, org))}</p>`,
    `<p>${escapeHtml(t.username)}: <strong>${usernames.map(escapeHtml).join(", ")}</strong></p>`,
    `<p>${escapeHtml(t.signIn)}: <a href="${escapeHtml(input.signInUrl)}">${escapeHtml(input.signInUrl)}</a></p>`,
    `<p>${escapeHtml(t.noPassword(kind))}</p>`,
    `<p style="color:#666">${escapeHtml(t.footer)}</p>`,
    "</body></html>",
  ].join("\n");
  return { subject: t.subject(kind), text: `${text}\n`, html };
}

/** How the outbox words "account" e-mails (MailOutbox.renderWith): in the letters' language unless the row names one. */
export function accountMailRenderer(config: KuvertConfig): MailRenderer {
  return (mail) => renderAccountMail({ language: mail.language ?? letterLanguage(config), organisationName: mail.organisationName, signInUrl: signInUrl(config), items: mail.items });
}
