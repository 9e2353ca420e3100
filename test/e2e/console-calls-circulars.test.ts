// The console's Calls and Circulars pages in a real browser (Debian's Chromium through
// playwright-core) against a running stack: test homeserver, PostgreSQL, clamd, SMTP and Kuvert
// with video consultations configured. A case worker (role staff) starts a call for an
// organisation and the Jitsi widget lands in the room's state on the homeserver, issues a guest
// link (shown once, copied, e-mailed) and revokes it, and ends the call. Screenshots go to
// test-artifacts/console/.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { chromium, type Browser, type Page } from "playwright-core";
import { chromiumOptions, createAccount, plannedAccount, type Account } from "../support/console.ts";
import { artifactsDir, repoRoot, startStack, waitFor, type Stack } from "../support/harness.ts";

const shots = join(artifactsDir, "console");
const SECRET = "test-jitsi-secret-0123456789abcdef";
const DOMAIN = "meet.kuvert.test";

describe("the console's calls and circulars pages in a browser", () => {
  let stack: Stack;
  let browser: Browser;
  const serverName = "kuvert.test";
  const caseWorker = plannedAccount("caseworker", serverName);
  const orgId = "gemeinde-calls";
  let roomId: string;

  const open = async (): Promise<Page> => {
    const context = await browser.newContext({ locale: "de-DE", viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    page.on("pageerror", (err) => console.error("[browser]", err.message));
    await page.goto(`${stack.publicUrl}/console/`);
    return page;
  };

  const signIn = async (page: Page, account: Account) => {
    await page.locator("#user").fill(account.localpart);
    await page.locator("#password").fill(account.password);
    await page.getByRole("button", { name: "Anmelden" }).click();
    await page.getByRole("navigation").waitFor();
  };

  /** Takes a screenshot, and checks what a screen reader and a keyboard user need on every page shown. */
  const shot = async (page: Page, name: string) => {
    await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
    const unlabelled = await page.evaluate(() =>
      Array.from(document.querySelectorAll<HTMLInputElement>("input, select, textarea"))
        .filter((el) => (el.labels?.length ?? 0) === 0 && !el.getAttribute("aria-label"))
        .map((el) => el.outerHTML),
    );
    assert.deepEqual(unlabelled, [], `${name}: form fields without a label`);
    const nameless = await page.evaluate(() => Array.from(document.querySelectorAll("button, a[href]")).filter((el) => !(el.textContent ?? "").trim() && !el.getAttribute("aria-label")).map((el) => el.outerHTML));
    assert.deepEqual(nameless, [], `${name}: buttons or links without a name`);
  };

  /** Every element the keyboard reaches from `start` on, a few steps, shows where the focus is. */
  const focusIsVisible = async (page: Page, start: string, steps = 4) => {
    await page.locator(start).focus();
    for (let i = 0; i < steps; i++) {
      const style = await page.evaluate(() => {
        const el = document.activeElement as HTMLElement;
        const s = getComputedStyle(el);
        return { tag: el.tagName, text: (el.textContent ?? "").trim().slice(0, 40), outline: s.outlineStyle, width: s.outlineWidth };
      });
      assert.notEqual(style.tag, "BODY", "Tab reaches nothing");
      assert.ok(style.outline !== "none" && style.width !== "0px", `focus on ${style.tag} ${style.text} is invisible: ${JSON.stringify(style)}`);
      await page.keyboard.press("Tab");
    }
  };

  /** The room's Jitsi widgets as the homeserver holds them (state events with content). */
  const widgetsInRoom = () =>
    stack.hs!.roomState(roomId).filter((e) => e.type === "im.vector.modular.widgets" && typeof (e.content as { url?: unknown }).url === "string");

  before(async () => {
    if (!existsSync(join(repoRoot, "web", "console", "dist", "index.html"))) {
      execFileSync(process.execPath, [join(repoRoot, "node_modules", "vite", "bin", "vite.js"), "build", "--config", "web/console/vite.config.ts"], { cwd: repoRoot, stdio: "inherit" });
    }
    mkdirSync(shots, { recursive: true });
    stack = await startStack({
      name: "console-calls",
      configure: (raw) => {
        (raw.staff as unknown[]).push({ userId: caseWorker.userId, roles: ["staff"] });
        raw.calls = { jitsiDomain: DOMAIN, widgetBaseUrl: "https://element.kuvert.test/", appSecret: SECRET, appId: "kuvert-test", callMinutes: 60, guestLinkMinutes: 30 };
      },
    });
    assert.ok(stack.hs, "these tests read the room state of the test homeserver");
    await createAccount(stack.access, caseWorker);
    const created = await stack.api("POST", "/api/v1/organisations", { id: orgId, name: "Gemeinde Rufach", tags: ["municipalities"], clerks: [{ email: "rita@rufach.example", name: "Rita" }] });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    roomId = await stack.roomOf(orgId);
    browser = await chromium.launch(chromiumOptions);
  });

  after(async () => {
    await browser?.close();
    await stack?.stop();
  });

  it("lets a case worker start a call for an organisation: the widget appears in the room; a second start reuses it", async () => {
    const page = await open();
    await signIn(page, caseWorker);
    const nav = await page.getByRole("navigation").getByRole("link").allInnerTexts();
    assert.ok(nav.includes("Videoberatungen"), `staff do not see the calls page: ${nav.join(", ")}`);
    await page.getByRole("link", { name: "Videoberatungen" }).click();
    await page.getByRole("heading", { name: "Laufende Videoberatungen" }).waitFor();
    await page.getByText("Keine Videoberatung läuft.").waitFor();
    // Starting without a choice says what is missing and starts nothing.
    await page.getByRole("button", { name: "Videoberatung starten" }).click();
    assert.equal(await page.getByRole("alert").innerText(), "Wählen Sie eine Organisation.");
    await page.getByLabel("Organisation").selectOption(orgId);
    await page.getByRole("button", { name: "Videoberatung starten" }).click();
    await page.getByText("Die Videoberatung für Gemeinde Rufach ist gestartet").waitFor();
    const row = page.locator(`tr[data-organisation="${orgId}"]`);
    await row.waitFor();
    assert.match(await row.innerText(), new RegExp(`Gemeinde Rufach \\(${orgId}\\)\\s+${caseWorker.userId.replace(/[.]/g, "\\.")}`));

    // The widget is in the room, as Element's own Jitsi widget, sent by Kuvert's bot.
    await waitFor("the Jitsi widget in the room", () => widgetsInRoom().length === 1);
    const [widget] = widgetsInRoom();
    assert.equal(widget!.sender, stack.botUserId);
    const content = widget!.content as { type: string; data: { domain: string; conferenceId: string } };
    assert.equal(content.type, "jitsi");
    assert.equal(content.data.domain, DOMAIN);
    const layout = stack.hs!.roomState(roomId).find((e) => e.type === "io.element.widgets.layout");
    assert.deepEqual((layout?.content as { widgets: Record<string, { container: string }> }).widgets[widget!.state_key!]?.container, "top");
    await row.getByText("im Raum").waitFor({ timeout: 10_000 });

    // Starting again reuses the running call and says so.
    await page.getByRole("button", { name: "Videoberatung starten" }).click();
    await page.getByText("Für Gemeinde Rufach läuft bereits eine Videoberatung; sie wird weiter genutzt.").waitFor();
    assert.equal(widgetsInRoom().length, 1);
    assert.equal(await page.locator("tr[data-organisation]").count(), 1);
    const calls = (await stack.api<{ calls: { organisationId: string; startedBy: string }[] }>("GET", "/api/v1/calls?state=running")).body.calls;
    assert.deepEqual(
      calls.map((c) => [c.organisationId, c.startedBy]),
      [[orgId, caseWorker.userId]],
    );
    await shot(page, "11-calls");
    await focusIsVisible(page, "#call-organisation");
    await page.context().close();
  });

  it("issues a guest link shown once with a copy button, e-mails it, and revokes it", async () => {
    const page = await open();
    await page.context().grantPermissions(["clipboard-read", "clipboard-write"], { origin: stack.publicUrl });
    await signIn(page, caseWorker);
    await page.getByRole("link", { name: "Videoberatungen" }).click();
    await page.getByRole("button", { name: "Gastlinks: Gemeinde Rufach" }).click();
    await page.getByRole("heading", { name: "Gastlinks: Gemeinde Rufach" }).waitFor();
    await page.getByText("Noch keine Gastlinks für diese Videoberatung.").waitFor();
    // A wrong value is the server's refusal, in a sentence, and nothing is issued.
    await page.getByLabel("Name des Gasts").fill("Gerd Gast");
    await page.getByLabel("E-Mail-Adresse des Gasts").fill("gerd@extern.example");
    await page.getByLabel(/^Gültig für Minuten/).fill("100000");
    await page.getByRole("button", { name: "Gastlink ausstellen" }).click();
    assert.match(await page.getByRole("alert").innerText(), /validMinutes: expected at most \d+/);
    assert.equal(await page.getByTestId("issued-link").count(), 0);
    await page.getByLabel(/^Gültig für Minuten/).fill("20");
    await page.getByRole("button", { name: "Gastlink ausstellen" }).click();
    const issued = page.getByTestId("issued-link");
    await issued.waitFor();
    assert.match(await issued.innerText(), /Gastlink für Gerd Gast ausgestellt und per E-Mail verschickt; gültig bis /);
    const url = await page.getByLabel("Gastlink", { exact: true }).inputValue();
    assert.ok(url.startsWith(`${stack.config.publicApi.baseUrl.replace(/\/$/, "")}/call/#ey`), url);
    await page.getByRole("button", { name: "Link kopieren" }).click();
    await page.getByText("Kopiert.").waitFor();
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), url);
    const linkRow = page.locator("table.links tbody tr").filter({ hasText: "gerd@extern.example" });
    await linkRow.waitFor();
    assert.equal(await linkRow.getAttribute("data-link-state"), "valid");
    await shot(page, "12-calls-guest-link");
    await focusIsVisible(page, "#guest-name", 5);

    // The guest gets the same link by e-mail, and the guest page accepts it.
    await waitFor("the guest's e-mail", () => stack.smtp.messages.some((m) => JSON.stringify(m.to).includes("gerd@extern.example")));
    const mail = stack.smtp.messages.find((m) => JSON.stringify(m.to).includes("gerd@extern.example"))!;
    assert.ok(JSON.stringify(mail).includes(url.split("#")[1]!), "the e-mail carries another link");
    const token = url.split("#")[1]!;
    const session = () => fetch(`${stack.publicUrl}/api/v1/guest/session`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ token }) });
    assert.equal((await session()).status, 200);

    // The link once shown is gone when the page is opened again; the list keeps the link's facts.
    await page.reload();
    await page.getByRole("button", { name: "Gastlinks: Gemeinde Rufach" }).click();
    await linkRow.waitFor();
    assert.equal(await page.getByTestId("issued-link").count(), 0, "the link is shown again");

    page.once("dialog", (d) => void d.accept());
    await page.getByRole("button", { name: "Widerrufen: Gerd Gast" }).click();
    await page.getByText("Gastlink für Gerd Gast widerrufen.").waitFor();
    await page.locator('table.links tbody tr[data-link-state="revoked"]').waitFor();
    assert.match(await linkRow.innerText(), /widerrufen/);
    assert.equal(await page.getByRole("button", { name: "Widerrufen: Gerd Gast" }).count(), 0);
    const refused = await session();
    assert.equal(refused.status, 410);
    assert.equal(((await refused.json()) as { errcode: string }).errcode, "KUVERT_GUEST_LINK_REVOKED");
    const revokedBy = await stack.kuvert!.db.query<{ actor: string }>("SELECT actor FROM audit_log WHERE action = 'call.guest_link.revoked'");
    assert.deepEqual(
      revokedBy.rows.map((r) => r.actor),
      [caseWorker.userId],
    );
    await page.context().close();
  });

  it("ends the call: the widget leaves the room and the page shows no running call", async () => {
    const page = await open();
    await signIn(page, caseWorker);
    await page.getByRole("link", { name: "Videoberatungen" }).click();
    page.once("dialog", (d) => void d.accept());
    await page.getByRole("button", { name: "Beenden: Gemeinde Rufach" }).click();
    await page.getByText("Die Videoberatung für Gemeinde Rufach ist beendet").waitFor();
    await page.getByText("Keine Videoberatung läuft.").waitFor();
    await waitFor("the widget removed from the room", () => widgetsInRoom().length === 0);
    const ended = await stack.kuvert!.db.query<{ actor: string }>("SELECT actor FROM audit_log WHERE action = 'call.ended'");
    assert.deepEqual(
      ended.rows.map((r) => r.actor),
      [caseWorker.userId],
    );
    // In English too.
    await page.getByLabel("Sprache").selectOption("en");
    await page.getByRole("heading", { name: "Running video consultations" }).waitFor();
    assert.ok(await page.getByText("No video consultation is running.").isVisible());
    assert.ok(await page.getByText("The video consultation for Gemeinde Rufach has ended").isVisible(), "the notice stays in German");
    await shot(page, "13-calls-english");
    await page.context().close();
  });
});
