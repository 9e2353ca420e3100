// The circulars' notification e-mail: a circular waiting in an organisation's room.
import { defineNotificationKind } from "../mail/templates.ts";
// A circular and a document to the same room are combined into one e-mail, worded as documents.
import "../documents/mail.ts";

declare module "../mail/templates.ts" {
  interface NotificationKinds {
    circular: true;
  }
}

export const circularMail = defineNotificationKind("circular", {
  group: "room",
  mixedAs: "document",
  documents: true,
  wording: {
    de: {
      subject: (org, count) => (org ? `${count === 1 ? "Neues Rundschreiben" : "Neue Rundschreiben"} für ${org}` : "Neue Rundschreiben in Kuvert"),
      intro: (org, count) => `${org ? `im Kuvert-Raum von ${org}` : "in Ihrem Kuvert-Raum"} ${count === 1 ? "liegt ein neues Rundschreiben" : `liegen ${count} neue Rundschreiben`} für Sie bereit:`,
    },
    en: {
      subject: (org, count) => (org ? `${count === 1 ? "New circular" : "New circulars"} for ${org}` : "New circulars in Kuvert"),
      intro: (org, count) => `${org ? `In the Kuvert room of ${org}` : "In your Kuvert room"}, ${count === 1 ? "a new circular is" : `${count} new circulars are`} waiting for you:`,
    },
  },
});
