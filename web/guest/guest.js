// The guest page: a guest opens the link from the invitation e-mail (…/call/#<token>). The page
// asks Kuvert whether the link is still good (POST /api/v1/guest/session; the token stays in the
// URL fragment, which browsers never send to servers), then loads the Jitsi IFrame API from the
// deployment's own Jitsi server (https://<jitsi>/external_api.js, so client and server versions
// match) and joins the conference with the signed guest token. Every failure ends in a sentence,
// never in an endless spinner.
//
// Members come here from the call link page (/console/join.html, for Element X users): it signed
// them in, Kuvert checked their membership, and it left the join details for this tab in
// session storage before opening /call/#member. They are used once and removed.

const texts = {
  de: {
    title: "Videoberatung",
    titleWith: (org) => `Videoberatung mit ${org}`,
    other: "English",
    checking: "Der Link wird geprüft …",
    joining: "Die Videoberatung wird geöffnet …",
    expired: ["Dieser Link ist abgelaufen", "Der Link zur Videoberatung gilt nicht mehr. Bitte fragen Sie bei Ihrer Ansprechperson nach einem neuen Link."],
    revoked: ["Dieser Link wurde zurückgezogen", "Der Link zur Videoberatung wurde zurückgezogen und kann nicht mehr verwendet werden. Bitte wenden Sie sich an Ihre Ansprechperson."],
    ended: ["Die Videoberatung ist beendet", "Diese Videoberatung ist vorbei. Wenn Sie noch Fragen haben, wenden Sie sich bitte an Ihre Ansprechperson."],
    invalid: ["Dieser Link ist ungültig", "Der Link ist unvollständig oder wurde verändert. Bitte öffnen Sie ihn genau so, wie er in der E-Mail steht."],
    error: ["Die Videoberatung kann gerade nicht geöffnet werden", "Der Dienst ist im Moment nicht erreichbar. Bitte versuchen Sie es in einigen Minuten noch einmal."],
    jitsiDown: ["Der Videodienst ist nicht erreichbar", "Der Server für die Videoberatung antwortet nicht. Bitte versuchen Sie es in einigen Minuten noch einmal."],
    retry: "Noch einmal versuchen",
    until: (t) => `Der Link gilt bis ${t}.`,
    memberAgain: ["Bitte öffnen Sie den Link aus dem Raum noch einmal", "Die Anmeldung für diese Videoberatung ist nicht mehr da (zum Beispiel nach dem Neuladen der Seite). Öffnen Sie den Link aus dem Raum erneut und melden Sie sich an."],
    memberUntil: (t) => `Die Videoberatung endet spätestens ${t}.`,
  },
  en: {
    title: "Video consultation",
    titleWith: (org) => `Video consultation with ${org}`,
    other: "Deutsch",
    checking: "Checking the link …",
    joining: "Opening the video consultation …",
    expired: ["This link has expired", "The link to the video consultation is no longer valid. Please ask your contact person for a new link."],
    revoked: ["This link was withdrawn", "The link to the video consultation was withdrawn and cannot be used any more. Please contact your contact person."],
    ended: ["The video consultation has ended", "This video consultation is over. If you have further questions, please contact your contact person."],
    invalid: ["This link is not valid", "The link is incomplete or was changed. Please open it exactly as it appears in the e-mail."],
    error: ["The video consultation cannot be opened right now", "The service cannot be reached at the moment. Please try again in a few minutes."],
    jitsiDown: ["The video service cannot be reached", "The video consultation server does not answer. Please try again in a few minutes."],
    retry: "Try again",
    until: (t) => `The link is valid until ${t}.`,
    memberAgain: ["Please open the link from the room again", "The sign-in for this video consultation is gone (for example after reloading the page). Open the link from the room again and sign in."],
    memberUntil: (t) => `The video consultation ends at ${t} at the latest.`,
  },
};

const params = new URLSearchParams(location.search);
const language = params.get("lang") === "en" ? "en" : "de";
const t = texts[language];
const $ = (id) => document.getElementById(id);

function setLanguageLink() {
  const other = language === "en" ? "de" : "en";
  const link = $("language");
  link.textContent = t.other;
  link.href = `?lang=${other}${location.hash}`;
  document.documentElement.lang = language;
  document.title = t.title;
  $("title").textContent = t.title;
}

/** Shows a final state: a heading and a sentence (and, for passing troubles, a retry button). */
function show(state, [heading, text], retry = false) {
  document.body.dataset.state = state;
  $("message-title").textContent = heading;
  $("message-text").textContent = text;
  if (retry) {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = t.retry;
    button.addEventListener("click", () => location.reload());
    $("message-text").append(document.createElement("br"), button);
  }
}

const refusals = {
  KUVERT_GUEST_LINK_EXPIRED: "expired",
  KUVERT_GUEST_LINK_REVOKED: "revoked",
  KUVERT_CALL_ENDED: "ended",
  KUVERT_GUEST_LINK_INVALID: "invalid",
  KUVERT_INVALID_INPUT: "invalid",
};

function loadScript(src) {
  return new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = src;
    script.async = true;
    script.addEventListener("load", () => resolve());
    script.addEventListener("error", () => reject(new Error(`could not load ${src}`)));
    document.head.append(script);
  });
}

async function session(token) {
  const res = await fetch("/api/v1/guest/session", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ token }),
    cache: "no-store",
    credentials: "omit",
  });
  const body = await res.json().catch(() => ({}));
  return { ok: res.ok, body };
}

/** The join details the call link page left for this tab (members), taken once. */
function memberSession() {
  const raw = sessionStorage.getItem("kuvert.memberJoin");
  sessionStorage.removeItem("kuvert.memberJoin");
  try {
    const s = raw ? JSON.parse(raw) : null;
    return s && typeof s.jwt === "string" && typeof s.roomName === "string" ? s : null;
  } catch {
    return null;
  }
}

async function main() {
  setLanguageLink();
  if (location.hash === "#member") {
    const s = memberSession();
    if (!s) return show("member-again", t.memberAgain);
    return join(s, t.memberUntil);
  }
  $("message-title").textContent = t.checking;
  const token = decodeURIComponent(location.hash.slice(1)).trim();
  if (!/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/.test(token)) return show("invalid", t.invalid);

  let answer;
  try {
    answer = await session(token);
  } catch {
    return show("error", t.error, true);
  }
  if (!answer.ok) {
    const state = refusals[answer.body.errcode];
    return state ? show(state, t[state]) : show("error", t.error, true);
  }
  return join(answer.body, t.until);
}

/** Joins the conference with what Kuvert answered (a guest's link session, or a member's). */
async function join(s, untilText) {
  if (s.organisationName) {
    document.title = t.titleWith(s.organisationName);
    $("title").textContent = t.titleWith(s.organisationName);
  }
  const until = new Date(s.expiresAt).toLocaleString(language === "en" ? "en-GB" : "de-DE", { dateStyle: "medium", timeStyle: "short" });
  $("message-title").textContent = t.joining;
  $("message-text").textContent = untilText(until);

  try {
    await loadScript(s.scriptUrl);
  } catch {
    return show("error", t.jitsiDown, true);
  }
  if (typeof window.JitsiMeetExternalAPI !== "function") return show("error", t.jitsiDown, true);

  const parentNode = $("conference");
  parentNode.hidden = false;
  document.body.dataset.state = "joining";
  const api = new window.JitsiMeetExternalAPI(s.domain, {
    roomName: s.roomName,
    jwt: s.jwt,
    parentNode,
    lang: language,
    width: "100%",
    height: "100%",
    userInfo: { displayName: s.displayName },
    configOverwrite: { prejoinConfig: { enabled: true }, disableDeepLinking: true },
  });
  // The guest hung up: close the conference frame and say so.
  api.addListener?.("readyToClose", () => {
    api.dispose?.();
    parentNode.hidden = true;
    show("ended", t.ended);
  });
}

main().catch(() => show("error", t.error, true));
