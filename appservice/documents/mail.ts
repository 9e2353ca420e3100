// The documents' notification e-mails: a document waiting in an organisation's room (to its
// clerks), and a document an organisation uploaded that passed the scan (to staff).
import { defineNotificationKind } from "../mail/templates.ts";

declare module "../mail/templates.ts" {
  interface NotificationKinds {
    document: true;
    "inbound-file": true;
  }
}

/** Documents for an organisation; combined with circulars to the same room into one e-mail, worded as documents. */
export const documentMail = defineNotificationKind("document", {
  group: "room",
  mixedAs: "document",
  documents: true,
  wording: {
    de: {
      subject: (org, count) => (org ? `${count === 1 ? "Neues Dokument" : "Neue Dokumente"} für ${org}` : "Neue Dokumente in Kuvert"),
      intro: (org, count) => `${org ? `im Kuvert-Raum von ${org}` : "in Ihrem Kuvert-Raum"} ${count === 1 ? "liegt ein neues Dokument" : `liegen ${count} neue Dokumente`} für Sie bereit:`,
    },
    en: {
      subject: (org, count) => (org ? `${count === 1 ? "New document" : "New documents"} for ${org}` : "New documents in Kuvert"),
      intro: (org, count) => `${org ? `In the Kuvert room of ${org}` : "In your Kuvert room"}, ${count === 1 ? "a new document is" : `${count} new documents are`} waiting for you:`,
    },
  },
});

/** A file an organisation's clerk uploaded that the scan found clean. */
export const inboundFileMail = defineNotificationKind("inbound-file", {
  wording: {
    de: {
      subject: (org, count) => (org ? `${count === 1 ? "Neues Dokument" : "Neue Dokumente"} von ${org}` : "Neue Dokumente in Kuvert"),
      intro: (org, count) => `${org ?? "Eine Organisation"} hat ${count === 1 ? "ein Dokument" : `${count} Dokumente`} in ihren Kuvert-Raum hochgeladen. Die Virenprüfung hat nichts gefunden.`,
    },
    en: {
      subject: (org, count) => (org ? `${count === 1 ? "New document" : "New documents"} from ${org}` : "New documents in Kuvert"),
      intro: (org, count) => `${org ?? "An organisation"} uploaded ${count === 1 ? "a document" : `${count} documents`} in its Kuvert room. The virus scan found nothing.`,
    },
  },
});
