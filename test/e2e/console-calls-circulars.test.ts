// The console's Calls and Circulars pages in a real browser (Debian's Chromium through
// playwright-core) against a running stack: test homeserver, PostgreSQL, clamd, SMTP and Kuvert
// with video consultations configured. A case worker (role staff) starts a call for an
// organisation and the Jitsi widget lands in the room's state on the homeserver, issues a guest
// link (shown once, copied, e-mailed) and revokes it, and ends the call; sends a circular with an
// attachment to a tag and watches every delivery reach delivered, corrects it, schedules another
// and cancels it. Screenshots go to test-artifacts/console/.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { chromium, type Browser, type Page } from "playwright-core";
import { chromiumOptions, createAccount, ensureConsoleBuilt, focusIsVisible, plannedAccount, screenshotAndCheck, type Account } from "../support/console.ts";
import { startStack, waitFor, type Stack, testServerName } from "../support/harness.ts";

const SECRET = "test-jitsi-secret-0123456789abcdef";
const DOMAIN = "meet.kuvert.test";

describe("the console's calls and circulars pages in a browser", () => {
  let stack: Stack;
  let browser: Browser;
  const serverName = testServerName();
  const caseWorker = plannedAccount("caseworker", serverName);
  const orgId = "gemeinde-calls";
  let roomId: string;
  const schools = [
    { id: "schule-nord", name: "Schule Nord" },
    { id: "schule-sued", name: "Schule Süd" },
  ];
  const schoolRooms: Record<string, string> = {};

  const open = async (): Promise<Page> => {
    const context = await browser.newContext({ locale: "de-DE", timezoneId: "Europe/Berlin", viewport: { width: 1280, height: 900 } });
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

  /** The room's Jitsi widgets as the homeserver holds them (state events with content). */
  const widgetsInRoom = async () => (await stack.roomState(roomId)).filter((e) => e.type === "im.vector.modular.widgets" && typeof (e.content as { url?: unknown }).url === "string");

  before(async () => {
    ensureConsoleBuilt();
    stack = await startStack({
      name: "console-calls",
      configure: (raw) => {
        (raw.staff as unknown[]).push({ userId: caseWorker.userId, roles: ["staff"] });
        raw.calls = { jitsiDomain: DOMAIN, widgetBaseUrl: "https://element.kuvert.test/", appSecret: SECRET, appId: "kuvert-test", callMinutes: 60, guestLinkMinutes: 30 };
      },
    });
    await createAccount(stack.access, caseWorker);
    const created = await stack.api("POST", "/api/v1/organisations", { id: orgId, name: "Gemeinde Rufach", tags: ["municipalities"], clerks: [{ email: "rita@rufach.example", name: "Rita" }] });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    roomId = await stack.roomOf(orgId);
    for (const o of schools) {
      const res = await stack.api("POST", "/api/v1/organisations", { ...o, tags: ["schools"], clerks: [{ email: `info@${o.id}.example` }] });
      assert.equal(res.status, 201, JSON.stringify(res.body));
      schoolRooms[o.id] = await stack.roomOf(o.id);
    }
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
    await waitFor("the Jitsi widget in the room", async () => (await widgetsInRoom()).length === 1);
    const [widget] = await widgetsInRoom();
    assert.equal(widget!.sender, stack.botUserId);
    const content = widget!.content as { type: string; data: { domain: string; conferenceId: string } };
    assert.equal(content.type, "jitsi");
    assert.equal(content.data.domain, DOMAIN);
    const layout = (await stack.roomState(roomId)).find((e) => e.type === "io.element.widgets.layout");
    assert.deepEqual((layout?.content as { widgets: Record<string, { container: string }> }).widgets[widget!.state_key!]?.container, "top");
    await row.getByText("im Raum").waitFor({ timeout: 10_000 });

    // Starting again reuses the running call and says so.
    await page.getByRole("button", { name: "Videoberatung starten" }).click();
    await page.getByText("Für Gemeinde Rufach läuft bereits eine Videoberatung; sie wird weiter genutzt.").waitFor();
    assert.equal((await widgetsInRoom()).length, 1);
    assert.equal(await page.locator("tr[data-organisation]").count(), 1);
    const calls = (await stack.api<{ calls: { organisationId: string; startedBy: string }[] }>("GET", "/api/v1/calls?state=running")).body.calls;
    assert.deepEqual(
      calls.map((c) => [c.organisationId, c.startedBy]),
      [[orgId, caseWorker.userId]],
    );
    await screenshotAndCheck(page, "11-calls");
    await focusIsVisible(page, "#call-organisation", 4);
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
    await screenshotAndCheck(page, "12-calls-guest-link");
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
    await waitFor("the widget removed from the room", async () => (await widgetsInRoom()).length === 0);
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
    await screenshotAndCheck(page, "13-calls-english");
    await page.context().close();
  });

  /** Events of a room on the homeserver that Kuvert's bot sent, of one type. */
  const botEvents = async (room: string, type: string) => (await stack.timeline(room)).filter((e) => e.sender === stack.botUserId && e.type === type);

  it("sends a circular with an attachment to a tag, previews it as the rooms show it, and watches every delivery reach delivered", async () => {
    const page = await open();
    await signIn(page, caseWorker);
    await page.getByRole("link", { name: "Rundschreiben" }).click();
    await page.getByRole("heading", { name: "Neues Rundschreiben" }).waitFor();
    // Nothing written: said at once, nothing sent.
    await page.getByRole("button", { name: "Rundschreiben senden" }).click();
    assert.equal(await page.getByRole("alert").innerText(), "Schreiben Sie einen Text.");

    const text = "# Elternabend im Mai\nAm **12. Mai** um 18 Uhr, Anmeldung [hier](https://schulamt.example/anmeldung).\n- Aula\n- Eingang B\n<script>alert(1)</script>";
    await page.getByLabel(/^Text/).fill(text);
    assert.equal(await page.getByRole("alert").count(), 0, "the message about the missing text stays after it was written");
    const preview = page.getByTestId("circular-preview");
    await preview.locator("h1", { hasText: "Elternabend im Mai" }).waitFor();
    assert.equal(await preview.locator("strong").innerText(), "12. Mai");
    assert.equal(await preview.locator("script").count(), 0, "the preview runs what the text contains");
    // Targets: a tag; the page says how many organisations that reaches.
    await page.getByLabel("alle mit einem Schlagwort").check();
    await page.getByLabel("Schlagwort", { exact: true }).selectOption("schools");
    assert.equal(await page.getByTestId("reached").innerText(), "Erreicht 2 aktive Organisation(en).");
    await page.locator("#circular-files").setInputFiles({ name: "einladung.txt", mimeType: "text/plain", buffer: Buffer.from("Einladung zum Elternabend\n".repeat(100)) });
    await page.getByText("einladung.txt (").waitFor();
    await screenshotAndCheck(page, "14-circular-compose");
    await focusIsVisible(page, "#circular-text", 6);

    // The states each delivery row shows, in order, as the person sees them change.
    await page.evaluate(() => {
      const seen: Record<string, string[]> = {};
      (window as unknown as { seenStates: typeof seen }).seenStates = seen;
      const record = () => {
        for (const row of Array.from(document.querySelectorAll<HTMLElement>("table.deliveries tr[data-organisation]"))) {
          const list = (seen[row.dataset.organisation!] ??= []);
          if (list.at(-1) !== row.dataset.state) list.push(row.dataset.state!);
        }
      };
      new MutationObserver(record).observe(document.body, { subtree: true, childList: true, attributes: true, attributeFilter: ["data-state"] });
    });
    const previewHtml = await preview.innerHTML();
    await page.getByRole("button", { name: "Rundschreiben senden" }).click();
    await page.getByText(/^Rundschreiben circ_\S+ wird gesendet\.$/).waitFor();
    const id = (await page.getByText(/^Rundschreiben circ_\S+ wird gesendet\.$/).innerText()).split(" ")[1]!;
    await page.getByRole("heading", { name: "Rundschreiben: Elternabend im Mai" }).waitFor();
    await page.getByTestId("circular-state").getByText("verteilt", { exact: true }).waitFor({ timeout: 45_000 });
    for (const o of schools) await page.locator(`table.deliveries tr[data-organisation="${o.id}"][data-state="delivered"]`).waitFor();
    assert.equal(await page.locator("table.deliveries tr[data-organisation]").count(), 2);
    assert.match(await page.getByTestId("delivery-summary").innerText(), /2 zugestellt, 0 fehlgeschlagen, 0 ausstehend/);
    assert.match(await page.locator("dl.facts").innerText(), /einladung\.txt \(3 KB\) – geprüft, sauber/);
    const seen = await page.evaluate(() => (window as unknown as { seenStates: Record<string, string[]> }).seenStates);
    for (const o of schools) assert.equal(seen[o.id]?.at(-1), "delivered", `${o.id}: ${seen[o.id]?.join(" → ")}`);
    // The list shows it too.
    const listed = page.locator(`table.circulars tr[data-circular="${id}"]`);
    await listed.getByText("2 von 2 zugestellt, 0 fehlgeschlagen").waitFor({ timeout: 10_000 });
    await screenshotAndCheck(page, "15-circular-delivered");

    // What the rooms got is what the preview showed; the organisation without the tag got nothing.
    for (const o of schools) {
      const texts = (await botEvents(schoolRooms[o.id]!, "m.room.message")).filter((e) => (e.content as { msgtype?: string }).msgtype === "m.text" && String((e.content as { body?: string }).body).startsWith("# Elternabend"));
      assert.equal(texts.length, 1, `${o.id} got the circular ${texts.length} times`);
      const formatted = String((texts[0]!.content as { formatted_body?: string }).formatted_body);
      const asBrowserSees = await page.evaluate((html) => {
        const div = document.createElement("div");
        div.innerHTML = html;
        return div.innerHTML;
      }, formatted);
      assert.equal(asBrowserSees, previewHtml, `${o.id}: the room shows something else than the preview`);
      assert.ok((await botEvents(schoolRooms[o.id]!, "m.room.message")).some((e) => (e.content as { msgtype?: string; body?: string }).msgtype === "m.file" && (e.content as { body?: string }).body === "einladung.txt"));
    }
    assert.ok(!(await botEvents(roomId, "m.room.message")).some((e) => String((e.content as { body?: string }).body).includes("Elternabend")), "an organisation without the tag got the circular");
    const circular = (await stack.api<{ author: string; summary: { delivered: number } }>("GET", `/api/v1/circulars/${id}`)).body;
    assert.equal(circular.author, caseWorker.userId);
    assert.equal(circular.summary.delivered, 2);

    // A correction goes to the same rooms as an edit.
    await page.getByLabel("Korrigierter Text").fill("# Elternabend im Mai\nAm **13. Mai** um 18 Uhr.");
    await page.getByTestId("correction-preview").locator("strong", { hasText: "13. Mai" }).waitFor();
    await page.getByRole("button", { name: "Korrektur senden" }).click();
    await page.getByText("Korrektur an 2 Räume unterwegs.").waitFor();
    await page
      .locator("ul.corrections li[data-revision='1']")
      .getByText(/2 zugestellt, 0 fehlgeschlagen, 0 ausstehend/)
      .waitFor({ timeout: 30_000 });
    for (const o of schools) {
      await waitFor(`the edit in ${o.id}`, async () => (await botEvents(schoolRooms[o.id]!, "m.room.message")).some((e) => (e.content as { "m.relates_to"?: { rel_type?: string } })["m.relates_to"]?.rel_type === "m.replace"));
    }
    await screenshotAndCheck(page, "16-circular-corrected");
    await page.context().close();
  });

  it("schedules a circular for organisations chosen by hand, in the browser's time zone, and cancels it", async () => {
    const page = await open();
    await signIn(page, caseWorker);
    await page.getByRole("link", { name: "Rundschreiben" }).click();
    await page.getByLabel(/^Text/).fill("Erinnerung: Meldefrist endet Freitag.");
    await page.getByLabel("einzeln ausgewählte Organisationen").check();
    await page.getByRole("checkbox", { name: /Schule Nord/ }).check();
    await page.getByRole("checkbox", { name: /Gemeinde Rufach/ }).check();
    assert.equal(await page.getByTestId("reached").innerText(), "Erreicht 2 aktive Organisation(en).");
    await page.getByLabel("später senden").check();
    const when = page.getByLabel("Senden am (Ortszeit, Zeitzone Europe/Berlin)");
    // A time in the past is the server's refusal, in its words, and nothing is stored.
    await when.fill("2020-01-01T09:00");
    await page.getByRole("button", { name: "Rundschreiben planen" }).click();
    assert.match(await page.getByRole("alert").innerText(), /is in the past/);
    assert.equal((await stack.api<{ circulars: unknown[] }>("GET", "/api/v1/circulars")).body.circulars.length, 1);
    // Tomorrow at 09:30 in Berlin.
    const tomorrow = new Date(Date.now() + 24 * 3600_000);
    const day = new Intl.DateTimeFormat("en-CA", { timeZone: "Europe/Berlin", year: "numeric", month: "2-digit", day: "2-digit" }).format(tomorrow);
    await when.fill(`${day}T09:30`);
    await page.getByRole("button", { name: "Rundschreiben planen" }).click();
    await page.getByText(/^Rundschreiben circ_\S+ ist für .* geplant\.$/).waitFor();
    await page.getByTestId("circular-state").getByText("geplant", { exact: true }).waitFor();
    const list = (await stack.api<{ circulars: { id: string; state: string; scheduledAt: string; targets: unknown }[] }>("GET", "/api/v1/circulars")).body.circulars;
    const planned = list.find((c) => c.state === "scheduled")!;
    assert.deepEqual(planned.targets, { organisations: ["schule-nord", orgId] });
    const berlinHour = new Intl.DateTimeFormat("de-DE", { timeZone: "Europe/Berlin", hour: "2-digit", minute: "2-digit" }).format(new Date(planned.scheduledAt));
    assert.equal(berlinHour, "09:30", `scheduled at ${planned.scheduledAt}`);
    assert.equal(await page.locator("table.deliveries tr[data-state='pending']").count(), 2);
    await screenshotAndCheck(page, "17-circular-scheduled");

    page.once("dialog", (d) => void d.accept());
    await page.getByRole("button", { name: "Rundschreiben abbrechen" }).click();
    await page.getByText("Das Rundschreiben ist abgebrochen.").waitFor();
    await page
      .getByTestId("circular-state")
      .getByText(/^abgebrochen/)
      .waitFor();
    assert.equal(await page.getByRole("button", { name: "Rundschreiben abbrechen" }).count(), 0);
    const cancelled = (await stack.api<{ state: string; deliveries: { state: string }[] }>("GET", `/api/v1/circulars/${planned.id}`)).body;
    assert.equal(cancelled.state, "cancelled");
    assert.deepEqual(
      cancelled.deliveries.map((d) => d.state),
      ["failed", "failed"],
    );
    const audited = await stack.kuvert!.db.query<{ actor: string }>("SELECT actor FROM audit_log WHERE action = 'circular.cancelled' AND object = $1", [planned.id]);
    assert.deepEqual(
      audited.rows.map((r) => r.actor),
      [caseWorker.userId],
    );
    await page.context().close();
  });
});
