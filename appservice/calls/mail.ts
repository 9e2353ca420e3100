// The calls' notification e-mail: a guest's link to a video consultation.
import { defineNotificationKind } from "../mail/templates.ts";

declare module "../mail/templates.ts" {
  interface NotificationKinds {
    "guest-link": true;
  }
}

export const guestLinkMail = defineNotificationKind("guest-link", {
  wording: {
    de: {
      subject: (org) => (org ? `Einladung zur Videoberatung mit ${org}` : "Einladung zur Videoberatung"),
      intro: (org) => `Sie sind zu einer Videoberatung${org ? ` mit ${org}` : ""} eingeladen. Öffnen Sie den Link zur vereinbarten Zeit im Browser; Sie brauchen nichts zu installieren. Der Link gilt nur für Sie und nur bis zur genannten Zeit:`,
    },
    en: {
      subject: (org) => (org ? `Invitation to a video consultation with ${org}` : "Invitation to a video consultation"),
      intro: (org) => `You are invited to a video consultation${org ? ` with ${org}` : ""}. Open the link in your browser at the agreed time; there is nothing to install. The link is for you only and valid only until the time given:`,
    },
  },
});
