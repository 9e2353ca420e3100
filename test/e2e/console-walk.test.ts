// A walk through every page of the staff console in English and German, each in four states:
// empty (a fresh stack), loading (Kuvert's answer held back until the page shows it is loading),
// error (Kuvert answering 503 or 500 with its error JSON; the page says what went wrong in the
// person's language and recovers when asked to try again) and full (data made through Kuvert's
// API). The browser's preferred language picks the console's. Each state's visible text is
// checked, and its screenshot goes to test-artifacts/console/walk-<lang>-<page>-<state>.png.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { chromium, type Browser, type Page, type Route } from "playwright-core";
import { chromiumOptions, ensureConsoleBuilt, focusIsVisible, screenshotAndCheck, type Account } from "../support/console.ts";
import { startStack, waitFor, type Stack } from "../support/harness.ts";

type Lang = "en" | "de";
type PageName = "organisations" | "documents" | "circulars" | "calls" | "audit" | "status";

/** What each page says, in each language: its heading, its loading status, and its sentence for "could not load". */
const texts: Record<Lang, Record<PageName, { heading: string; loading: string; failed: string; empty: string }> & Record<"unavailable" | "internal" | "tryAgain" | "signIn", string>> = {
  en: {
    organisations: { heading: "Organisations", loading: "Loading organisations …", failed: "The organisations could not be loaded.", empty: "No organisations found." },
    documents: { heading: "Send documents", loading: "Loading organisations …", failed: "The organisations could not be loaded.", empty: "No organisations found." },
    circulars: { heading: "Circulars", loading: "Loading circulars …", failed: "The circulars could not be loaded.", empty: "No circulars yet." },
    calls: { heading: "Video consultations", loading: "Loading video consultations …", failed: "The running video consultations could not be loaded.", empty: "No video consultation is running." },
    audit: { heading: "Audit log", loading: "Loading the audit log …", failed: "The audit log could not be loaded.", empty: "No entries." },
    status: { heading: "Status", loading: "Loading the status …", failed: "The status could not be loaded.", empty: "No e-mails given up." },
    unavailable: "Kuvert is unavailable for the moment; try again shortly. (KUVERT_UNAVAILABLE)",
    internal: "Kuvert reported an internal error (HTTP 500). (KUVERT_INTERNAL)",
    tryAgain: "Try again",
    signIn: "Sign in",
  },
  de: {
    organisations: { heading: "Organisationen", loading: "Organisationen werden geladen …", failed: "Die Organisationen konnten nicht geladen werden.", empty: "Keine Organisationen gefunden." },
    documents: { heading: "Dokumente senden", loading: "Organisationen werden geladen …", failed: "Die Organisationen konnten nicht geladen werden.", empty: "Keine Organisationen gefunden." },
    circulars: { heading: "Rundschreiben", loading: "Rundschreiben werden geladen …", failed: "Die Rundschreiben konnten nicht geladen werden.", empty: "Noch keine Rundschreiben." },
    calls: { heading: "Videoberatungen", loading: "Videoberatungen werden geladen …", failed: "Die laufenden Videoberatungen konnten nicht geladen werden.", empty: "Keine Videoberatung läuft." },
    audit: { heading: "Protokoll", loading: "Protokoll wird geladen …", failed: "Das Protokoll konnte nicht geladen werden.", empty: "Keine Einträge." },
    status: { heading: "Status", loading: "Status wird geladen …", failed: "Der Status konnte nicht geladen werden.", empty: "Keine aufgegebenen E-Mails." },
    unavailable: "Kuvert ist vorübergehend nicht verfügbar; versuchen Sie es gleich noch einmal. (KUVERT_UNAVAILABLE)",
    internal: "Kuvert hat einen internen Fehler gemeldet (HTTP 500). (KUVERT_INTERNAL)",
    tryAgain: "Erneut versuchen",
    signIn: "Anmelden",
  },
};

/** The request that brings each page its data: the one held back or failed. */
const dataPath: Record<PageName, string> = {
  organisations: "/api/v1/organisations",
  documents: "/api/v1/console/organisations",
  circulars: "/api/v1/circulars",
  calls: "/api/v1/calls",
  audit: "/api/v1/audit",
  status: "/api/v1/status",
};

/** Kuvert's two ways of failing a read: unavailable for now (503), and an internal error (500). */
const failures: Record<PageName, { status: number; errcode: string; error: string; said: "unavailable" | "internal" }> = {
  organisations: { status: 503, errcode: "KUVERT_UNAVAILABLE", error: "The database is not reachable.", said: "unavailable" },
  documents: { status: 500, errcode: "KUVERT_INTERNAL", error: "Internal error.", said: "internal" },
  circulars: { status: 503, errcode: "KUVERT_UNAVAILABLE", error: "The database is not reachable.", said: "unavailable" },
  calls: { status: 500, errcode: "KUVERT_INTERNAL", error: "Internal error.", said: "internal" },
  audit: { status: 503, errcode: "KUVERT_UNAVAILABLE", error: "The database is not reachable.", said: "unavailable" },
  status: { status: 500, errcode: "KUVERT_INTERNAL", error: "Internal error.", said: "internal" },
};

const pageNames = Object.keys(dataPath) as PageName[];
const langs: Lang[] = ["en", "de"];

const organisations = [
  { id: "walk-nord", name: "Gemeindewerk Nord", tags: ["werke"], clerks: [{ email: "nord@walk.example", name: "Nora" }] },
  { id: "walk-sued", name: "Gemeindewerk Süd", tags: ["werke"], clerks: [{ email: "sued@walk.example", name: "Sven" }] },
];
const guestEmail = "gast@walk.example";
const circularTitle = "Wartung am Freitag";

describe("a walk through the console: every page empty, loading, failing and full, in English and German", () => {
  let stack: Stack;
  let browser: Browser;
  let admin: Account;
  const pages: Partial<Record<Lang, Page>> = {};
  const browserErrors: string[] = [];

  /** A signed-in console in the browser's language `lang` (one context per language, kept for the suite). */
  const consoleIn = async (lang: Lang): Promise<Page> => {
    if (pages[lang]) return pages[lang];
    const context = await browser.newContext({ locale: lang === "de" ? "de-DE" : "en-GB", timezoneId: "Europe/Berlin", viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    page.on("pageerror", (err) => browserErrors.push(`${lang}: ${err.message}`));
    await page.goto(`${stack.publicUrl}/console/`);
    await page.locator("#user").fill(admin.localpart);
    await page.locator("#password").fill(admin.password);
    await page.getByRole("button", { name: texts[lang].signIn, exact: true }).click();
    await page.getByRole("navigation").waitFor();
    assert.equal(await page.evaluate(() => document.documentElement.lang), lang);
    pages[lang] = page;
    return page;
  };

  /** Opens the page afresh (the console loads again, so the page asks for its data again). */
  const show = async (page: Page, lang: Lang, name: PageName) => {
    await page.goto("about:blank");
    await page.goto(`${stack.publicUrl}/console/#/${name}`);
    await page.getByRole("heading", { level: 1, name: texts[lang][name].heading, exact: true }).waitFor();
  };

  /** The matcher of each page's data request (one function per page: unroute finds a route by it). */
  const matchers = Object.fromEntries(pageNames.map((name) => [name, (url: URL) => url.pathname === dataPath[name]])) as Record<PageName, (url: URL) => boolean>;
  const isData = (name: PageName) => matchers[name];

  const shot = (page: Page, lang: Lang, name: PageName, state: string) => screenshotAndCheck(page, `walk-${lang}-${name}-${state}`);

  /** Nothing there yet: the page says so. */
  const empty = async (page: Page, lang: Lang, name: PageName) => {
    await show(page, lang, name);
    if (name === "audit") {
      // Signing in is audited, so the log is never empty: a filter that matches nothing yet is.
      await page.locator("#audit-action").fill("circular.*");
      await page.locator("#audit-action").press("Enter");
    }
    await page.getByText(texts[lang][name].empty, { exact: true }).waitFor();
    assert.equal(await page.getByRole("alert").count(), 0, `${name}: an error on the empty page`);
    if (name === "status") {
      assert.ok(await page.getByRole("heading", { name: lang === "de" ? "Zustand der Dienste" : "Health of the services" }).isVisible());
    }
    await shot(page, lang, name, "empty");
  };

  /** Kuvert's answer held back: the page shows a status named for what it loads, then the data. */
  const loading = async (page: Page, lang: Lang, name: PageName) => {
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const hold = async (route: Route) => {
      await held;
      await route.continue().catch(() => undefined);
    };
    await page.route(isData(name), hold);
    try {
      await show(page, lang, name);
      const status = page.getByRole("status", { name: texts[lang][name].loading, exact: true });
      await status.waitFor();
      assert.equal(await status.innerText(), texts[lang][name].loading);
      await shot(page, lang, name, "loading");
    } finally {
      release();
      await page.unroute(isData(name), hold);
    }
    await page.getByRole("status", { name: texts[lang][name].loading, exact: true }).waitFor({ state: "detached" });
  };

  /** Kuvert fails: the page names what could not be loaded and why, in the person's language, and recovers on "try again". */
  const failing = async (page: Page, lang: Lang, name: PageName) => {
    const f = failures[name];
    const fail = (route: Route) => route.fulfill({ status: f.status, contentType: "application/json", body: JSON.stringify({ errcode: f.errcode, error: f.error }) });
    await page.route(isData(name), fail);
    const alert = page.getByRole("alert");
    try {
      await show(page, lang, name);
      await alert.waitFor();
      assert.equal(await alert.innerText(), `${texts[lang][name].failed} ${texts[lang][f.said]}`);
      assert.equal(await page.getByRole("status", { name: texts[lang][name].loading }).count(), 0, `${name}: still loading beside the error`);
      assert.equal(await page.getByText(texts[lang][name].empty, { exact: true }).count(), 0, `${name}: a failure shown as "nothing there"`);
      await shot(page, lang, name, "error");
      await focusIsVisible(page, ".load-error button");
    } finally {
      await page.unroute(isData(name), fail);
    }
    await page.getByRole("button", { name: texts[lang].tryAgain, exact: true }).click();
    await alert.waitFor({ state: "detached" });
  };

  before(async () => {
    ensureConsoleBuilt();
    stack = await startStack({
      name: "console-walk",
      configure: (raw) => {
        raw.calls = { jitsiDomain: "meet.kuvert.test", widgetBaseUrl: "https://element.kuvert.test/", appSecret: "test-jitsi-secret-0123456789abcdef", appId: "kuvert-test", callMinutes: 60, guestLinkMinutes: 30 };
        // One failed attempt and an e-mail is given up: the status page's full state needs one.
        (raw.mail as Record<string, unknown>).maxAttempts = 1;
      },
    });
    admin = { userId: stack.staff.userId, localpart: stack.staff.userId.slice(1).split(":")[0]!, password: stack.staff.password };
    browser = await chromium.launch(chromiumOptions);
  });

  after(async () => {
    await browser?.close();
    await stack?.stop();
  });

  for (const lang of langs) {
    it(`${lang}: each page empty on a fresh stack, while loading, and when Kuvert fails`, async () => {
      const page = await consoleIn(lang);
      for (const name of pageNames) {
        await empty(page, lang, name);
        await loading(page, lang, name);
        await failing(page, lang, name);
      }
      assert.deepEqual(browserErrors, []);
    });
  }

  it("makes the data through Kuvert's API: organisations, a call with a guest link whose e-mail is given up, a circular", async () => {
    for (const o of organisations) {
      const res = await stack.api("POST", "/api/v1/organisations", o);
      assert.equal(res.status, 201, JSON.stringify(res.body));
    }
    for (const o of organisations) await stack.roomOf(o.id);
    const call = await stack.api<{ call: { id: string } }>("POST", `/api/v1/organisations/${organisations[0]!.id}/call`);
    assert.equal(call.status, 201, JSON.stringify(call.body));
    // The mail server away for one attempt: the guest's e-mail is given up.
    await stack.smtp.pause();
    try {
      const link = await stack.api("POST", `/api/v1/calls/${encodeURIComponent(call.body.call.id)}/guest-links`, { name: "Gerda Gast", email: guestEmail });
      assert.equal(link.status, 201, JSON.stringify(link.body));
      await waitFor("the guest's e-mail given up", async () => {
        const dead = await stack.api<{ mails: { recipient: string }[] }>("GET", "/api/v1/mail/dead");
        return dead.body.mails.some((m) => m.recipient === guestEmail);
      });
    } finally {
      await stack.smtp.resume();
    }
    const circular = await stack.api("POST", "/api/v1/circulars", { text: `# ${circularTitle}\nDie Werke sind am Freitag ab 14 Uhr nicht erreichbar.`, targets: { tag: "werke" } });
    assert.equal(circular.status, 201, JSON.stringify(circular.body));
  });

  for (const lang of langs) {
    it(`${lang}: each page full`, async () => {
      const page = await consoleIn(lang);
      const de = lang === "de";

      await show(page, lang, "organisations");
      for (const o of organisations) {
        const row = page.getByRole("row").filter({ has: page.getByRole("button", { name: o.id, exact: true }) });
        await row.waitFor();
        assert.match(await row.innerText(), new RegExp(`${o.name}\\s+werke\\s+${de ? "aktiv" : "active"}`));
      }
      await shot(page, lang, "organisations", "full");

      await show(page, lang, "documents");
      for (const o of organisations) await page.getByRole("checkbox", { name: `${o.name} (${o.id})` }).waitFor();
      assert.ok(await page.getByRole("button", { name: "werke", exact: true }).isVisible(), "no button for the tag");
      await shot(page, lang, "documents", "full");

      await show(page, lang, "circulars");
      const circularRow = page.locator("tr[data-circular]").filter({ hasText: circularTitle });
      await circularRow.waitFor();
      assert.match(await circularRow.innerText(), new RegExp(de ? "Schlagwort werke" : "tag werke"));
      await shot(page, lang, "circulars", "full");

      await show(page, lang, "calls");
      // The row names the organisation once the page has the names (a second request).
      const callRow = page.locator(`tr[data-organisation="${organisations[0]!.id}"]`).filter({ hasText: organisations[0]!.name });
      await callRow.waitFor();
      assert.match(await callRow.innerText(), new RegExp(`${organisations[0]!.name} \\(${organisations[0]!.id}\\)\\s+token:`));
      assert.ok(await page.getByRole("button", { name: `${de ? "Beenden" : "End"}: ${organisations[0]!.name}` }).isVisible());
      await shot(page, lang, "calls", "full");

      await show(page, lang, "audit");
      await page.getByRole("cell", { name: "organisation.created", exact: true }).first().waitFor();
      assert.equal(await page.getByRole("cell", { name: "organisation.created", exact: true }).count(), organisations.length);
      assert.ok(await page.getByRole("columnheader", { name: de ? "Aktion" : "Action", exact: true }).isVisible());
      await shot(page, lang, "audit", "full");

      await show(page, lang, "status");
      const deadRow = page.getByRole("row").filter({ hasText: guestEmail });
      await deadRow.waitFor();
      assert.ok(await page.getByRole("button", { name: `${de ? "Erneut senden" : "Send again"}: ${guestEmail}` }).isVisible());
      assert.ok(await page.getByRole("heading", { name: de ? "Warteschlangen" : "Queues", exact: true }).isVisible());
      await shot(page, lang, "status", "full");

      assert.deepEqual(browserErrors, []);
    });
  }
});
