// What Kuvert says about video consultations in rooms, and the guest e-mail's item line.
import type { Language } from "../i18n.ts";
import type { PermissionProblem } from "./widget.ts";

function time(date: Date, language: Language): string {
  return date.toLocaleString(language === "en" ? "en-GB" : "de-DE", { timeZone: process.env.TZ || "UTC", dateStyle: "medium", timeStyle: "short" });
}

/** The member link line: for Element X (no Jitsi widgets) and anyone who prefers the browser. */
function browserLink(language: Language, link: string | null): string {
  if (!link) return "";
  return language === "en" ? `\n\nIn Element X, or in the browser: ${link} (sign in with your Matrix account; only members of this room get in).` : `\n\nIn Element X oder im Browser: ${link} (mit Ihrem Matrix-Konto anmelden; nur Mitglieder dieses Raums kommen hinein).`;
}

const de = {
  helpVideo: "startet eine Videoberatung in diesem Raum (oder zeigt die laufende)",
  helpVideoEnd: "beendet die Videoberatung",
  started: (until: Date, link: string | null = null) => ({
    body: `Die Videoberatung ist gestartet: Oben im Raum erscheint „Jitsi“, dort treten Sie bei. Nur Mitglieder dieses Raums kommen hinein. Sie endet spätestens ${time(until, "de")}; „!video end“ beendet sie früher.${browserLink("de", link)}`,
  }),
  reused: (until: Date, link: string | null = null) => ({
    body: `Hier läuft schon eine Videoberatung: Treten Sie oben im Raum bei „Jitsi“ bei. Sie endet spätestens ${time(until, "de")}; „!video end“ beendet sie.${browserLink("de", link)}`,
  }),
  ended: "Die Videoberatung ist beendet; Kuvert hat sie aus dem Raum entfernt.",
  expired: "Die Videoberatung ist abgelaufen; Kuvert hat sie aus dem Raum entfernt.",
  noCall: "Hier läuft keine Videoberatung. „!video“ startet eine.",
  usage: "So geht es: „!video“ startet eine Videoberatung, „!video end“ beendet sie.",
  notConfigured: "Für Videoberatungen ist in dieser Kuvert-Installation noch kein Jitsi-Server eingerichtet. Bitte wenden Sie sich an die Administration.",
  roomNotReady: "Der Raum wird noch eingerichtet; versuchen Sie es gleich noch einmal.",
  archived: "Diese Organisation ist archiviert; Videoberatungen sind nicht mehr möglich.",
  failed: "Die Videoberatung konnte gerade nicht gestartet werden. Bitte versuchen Sie es in einer Minute noch einmal.",
  pending: "Die Videoberatung ist angelegt, erscheint aber noch nicht im Raum: Der Homeserver antwortet gerade nicht. Kuvert versucht es weiter; sie erscheint oben im Raum, sobald es klappt.",
  permission: (problems: PermissionProblem[]) =>
    "Die Videoberatung kann nicht gestartet werden: " +
    problems
      .map((p) =>
        p.who === "bot"
          ? `Kuvert braucht in diesem Raum Berechtigungsstufe ${p.required} für „${p.type}“, hat aber ${p.has}. Bitte wenden Sie sich an die Administration von Kuvert.`
          : `Sie brauchen in diesem Raum Berechtigungsstufe ${p.required}, um Widgets („${p.type}“) hinzuzufügen, haben aber ${p.has}. Bitten Sie Mitarbeitende, die Beratung zu starten.`,
      )
      .join(" "),
  guestItem: (org: string, until: Date) => `Videoberatung mit ${org}, Link gültig bis ${time(until, "de")}`,
};

const en: typeof de = {
  helpVideo: "starts a video consultation in this room (or shows the one running)",
  helpVideoEnd: "ends the video consultation",
  started: (until: Date, link: string | null = null) => ({
    body: `The video consultation has started: "Jitsi" appears at the top of the room; join there. Only members of this room get in. It ends at ${time(until, "en")} at the latest; "!video end" ends it earlier.${browserLink("en", link)}`,
  }),
  reused: (until: Date, link: string | null = null) => ({
    body: `A video consultation is already running here: join "Jitsi" at the top of the room. It ends at ${time(until, "en")} at the latest; "!video end" ends it.${browserLink("en", link)}`,
  }),
  ended: "The video consultation has ended; Kuvert removed it from the room.",
  expired: "The video consultation has expired; Kuvert removed it from the room.",
  noCall: 'No video consultation is running here. "!video" starts one.',
  usage: 'Usage: "!video" starts a video consultation, "!video end" ends it.',
  notConfigured: "No Jitsi server is set up for video consultations in this Kuvert installation yet. Please contact the administrators.",
  roomNotReady: "The room is still being set up; please try again in a moment.",
  archived: "This organisation is archived; video consultations are no longer possible.",
  failed: "The video consultation could not be started just now. Please try again in a minute.",
  pending: "The video consultation is set up but does not show in the room yet: the homeserver is not answering. Kuvert keeps trying; it appears at the top of the room once that works.",
  permission: (problems: PermissionProblem[]) =>
    "The video consultation cannot be started: " +
    problems
      .map((p) =>
        p.who === "bot"
          ? `Kuvert needs power level ${p.required} for "${p.type}" in this room but has ${p.has}. Please contact Kuvert's administrators.`
          : `You need power level ${p.required} in this room to add widgets ("${p.type}") but have ${p.has}. Please ask staff to start the consultation.`,
      )
      .join(" "),
  guestItem: (org: string, until: Date) => `Video consultation with ${org}, link valid until ${time(until, "en")}`,
};

export type CallTexts = typeof de;

export function callTexts(language: Language): CallTexts {
  return language === "en" ? en : de;
}
