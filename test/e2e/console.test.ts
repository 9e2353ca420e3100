// The staff console in a real browser (Debian's Chromium through playwright-core) against a
// running stack: test homeserver, PostgreSQL, clamd, SMTP and Kuvert. Staff sign in with their
// Matrix password, create an organisation, import a CSV, drop a clean and an infected file and
// watch them; the dpo exports and verifies the audit log; a clerk is refused. Screenshots of the
// main pages go to test-artifacts/console/.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import { chromium, type Browser, type Page } from "playwright-core";
import { openDatabase } from "../../appservice/db/database.ts";
import { EICAR } from "../support/clamd.ts";
import { chromiumOptions, createAccount, ensureConsoleBuilt, focusIsVisible, plannedAccount, screenshotAndCheck, type Account } from "../support/console.ts";
import { startStack, waitFor, type Stack, testServerName } from "../support/harness.ts";
import { version } from "../../appservice/version.ts";

describe("the staff console in a browser", () => {
  let stack: Stack;
  let browser: Browser;
  let admin: Account;
  const serverName = testServerName();
  const dpo = plannedAccount("dpo", serverName);
  const clerk = plannedAccount("clerk", serverName);
  const orgId = "schule-am-see";

  const open = async (): Promise<Page> => {
    const context = await browser.newContext({ acceptDownloads: true, locale: "de-DE", viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    page.on("pageerror", (err) => console.error("[browser]", err.message));
    await page.goto(`${stack.publicUrl}/console/`);
    return page;
  };

  /** Signs in through the form, with the keyboard only. */
  const signIn = async (page: Page, account: Account) => {
    await page.locator("#user").focus();
    await page.keyboard.type(account.localpart);
    await page.keyboard.press("Tab");
    await page.keyboard.type(account.password);
    await page.keyboard.press("Enter");
  };

  before(async () => {
    ensureConsoleBuilt();
    stack = await startStack({
      name: "console",
      homeserver: { sso: true },
      configure: (raw) => {
        (raw.staff as unknown[]).push({ userId: dpo.userId, roles: ["dpo"] });
      },
    });
    admin = { userId: stack.staff.userId, localpart: stack.staff.userId.slice(1).split(":")[0]!, password: stack.staff.password };
    for (const a of [dpo, clerk]) await createAccount(stack.access, a);
    browser = await chromium.launch(chromiumOptions);
  });

  after(async () => {
    await browser?.close();
    await stack?.stop();
  });

  it("signs staff in with their Matrix password, in German by default", async () => {
    const page = await open();
    await page.getByRole("heading", { name: "Anmelden mit Ihrem Matrix-Konto" }).waitFor();
    await screenshotAndCheck(page, "01-sign-in");
    await focusIsVisible(page);
    // A wrong password is the homeserver's refusal, said in a sentence.
    await signIn(page, { ...admin, password: "not-the-password" });
    assert.equal(await page.getByRole("alert").innerText(), "Benutzername oder Passwort ist falsch.");
    await page.locator("#user").fill("");
    await page.locator("#password").fill("");
    await signIn(page, admin);
    await page.getByRole("navigation").getByRole("link", { name: "Organisationen" }).waitFor();
    assert.equal(await page.getByRole("link", { name: "Organisationen" }).getAttribute("aria-current"), "page");
    assert.ok(await page.getByText(`Angemeldet als ${admin.userId}`).isVisible());
    // The Matrix device used for the OpenID token is logged out again.
    const { devices } = await stack.staff.client.getDevices();
    assert.ok(devices.length > 0);
    assert.ok(!devices.some((d) => d.display_name === "Kuvert-Konsole"), `the console's Matrix device was left behind: ${JSON.stringify(devices)}`);
    const cookies = await page.context().cookies();
    const session = cookies.find((c) => c.name === "kuvert_session");
    assert.ok(session?.httpOnly && session.secure && session.sameSite === "Strict", JSON.stringify(session));
    assert.equal(await page.evaluate(() => document.cookie.includes("kuvert_session")), false, "scripts can read the session cookie");
    await page.context().close();
  });

  it("signs staff in through the homeserver's single sign-on when it offers it (test homeserver: its SSO form)", async () => {
    const page = await open();
    await page.getByRole("link", { name: "Mit Single Sign-on anmelden" }).click();
    // The identity provider's page (here the test homeserver's), then back to the console with a login token.
    await page.getByRole("heading", { name: "Test Identity Provider" }).waitFor();
    await page.getByLabel("User name").fill(dpo.localpart);
    await page.getByLabel("Password").fill(dpo.password);
    await page.getByRole("button", { name: /Sign in at/ }).click();
    await page.getByRole("heading", { name: "Protokoll" }).waitFor();
    assert.ok(await page.getByText(`Angemeldet als ${dpo.userId}`).isVisible());
    assert.equal(new URL(page.url()).search, "", "the login token stays in the address bar");
    await page.context().close();
  });

  it("creates an organisation and shows its clerks' invitation state; imports a CSV with a preview", async () => {
    const page = await open();
    await signIn(page, admin);
    await page.getByLabel("Kennung").fill(orgId);
    await page.getByLabel(/^Name/).first().fill("Schule am See");
    await page
      .getByLabel(/^Schlagwörter/)
      .first()
      .fill("schools");
    await page
      .getByLabel(/^Sachbearbeitende/)
      .first()
      .fill(`Clara Clerk clara@schule.example ${clerk.userId}`);
    await page.getByRole("button", { name: "Organisation anlegen" }).click();
    await page.getByRole("heading", { name: `Schule am See (${orgId})` }).waitFor();
    // The room is made and the clerk invited in the background; the page looks again.
    await page.getByRole("cell", { name: "eingeladen", exact: true }).waitFor({ timeout: 30_000 });
    assert.ok(await page.getByRole("cell", { name: "clara@schule.example" }).isVisible());

    const csv = "id,name,tags,clerks\nschule-am-see,Schule am See,schools north,\ngemeinde-nord,Gemeinde Nord,municipalities,nord@gemeinde.example\n";
    await page.getByLabel(/CSV-Datei/).setInputFiles({ name: "orgs.csv", mimeType: "text/csv", buffer: Buffer.from(csv) });
    const preview = page.getByRole("table").filter({ has: page.getByText("Vorschau") });
    await preview.waitFor();
    const previewText = await preview.innerText();
    assert.match(previewText, /schule-am-see\s+wird geändert\s+Schlagwörter hinzu: north; Sachbearbeitende entfernt: /);
    assert.match(previewText, /gemeinde-nord\s+wird angelegt\s+Schlagwörter hinzu: municipalities; Sachbearbeitende hinzu: nord@gemeinde\.example/);
    await screenshotAndCheck(page, "02-organisations-import-preview");
    assert.equal((await stack.api("GET", "/api/v1/organisations/gemeinde-nord")).status, 404, "the preview created something");
    await page.getByRole("button", { name: "Import ausführen" }).click();
    const result = page
      .getByRole("table")
      .filter({ has: page.getByRole("columnheader", { name: "Ergebnis" }) })
      .last();
    await result.getByText("angelegt", { exact: true }).waitFor();
    assert.match(await result.innerText(), /schule-am-see\s+geändert/);
    assert.equal((await stack.api("GET", "/api/v1/organisations/gemeinde-nord")).status, 200);
    // The import removed the clerk (the CSV lists none for schule-am-see); put them back for the documents.
    await stack.api("POST", `/api/v1/organisations/${orgId}/clerks`, { matrixId: clerk.userId, email: "clara@schule.example", name: "Clara Clerk" });
    await page.reload();

    // Edit one organisation, archive the other (after confirming).
    await page.getByRole("button", { name: "gemeinde-nord" }).click();
    await page.getByRole("heading", { name: "Gemeinde Nord (gemeinde-nord)" }).waitFor();
    await page.getByRole("button", { name: "Bearbeiten" }).click();
    await page.locator("#edit-gemeinde-nord-name").fill("Gemeinde Nordheim");
    await page.getByRole("button", { name: "Speichern" }).click();
    await page.getByRole("heading", { name: "Gemeinde Nordheim (gemeinde-nord)" }).waitFor();
    assert.ok(await page.getByText("Gespeichert.").isVisible());
    page.once("dialog", (d) => void d.accept());
    await page.getByRole("button", { name: "Archivieren" }).click();
    await page.getByText("Zustand: archiviert").waitFor();
    const nord = (await stack.api<{ name: string; state: string }>("GET", "/api/v1/organisations/gemeinde-nord")).body;
    assert.deepEqual([nord.name, nord.state], ["Gemeinde Nordheim", "archived"]);

    await page.getByRole("button", { name: orgId }).click();
    await page.getByRole("heading", { name: `Schule am See (${orgId})` }).waitFor();
    assert.equal(await page.getByText("Gespeichert.").count(), 0, "the other organisation's notice is still shown");
    await screenshotAndCheck(page, "03-organisations");
    await page.context().close();
  });

  it("sends a clean and an infected file by drag and drop and shows each document's state", async () => {
    await stack.roomOf(orgId);
    const page = await open();
    await signIn(page, admin);
    await page.getByRole("link", { name: "Dokumente senden" }).click();
    // Choosing by tag checks every organisation with it (schule-am-see has "schools"; gemeinde-nord is archived).
    await page.getByRole("button", { name: "schools", exact: true }).click();
    assert.equal(await page.getByRole("checkbox", { name: /Schule am See/ }).isChecked(), true);
    assert.equal(await page.getByRole("checkbox", { name: /Gemeinde Nord/ }).count(), 0, "an archived organisation is offered");
    await page.getByLabel("Art des Dokuments").fill("Bescheid");
    await page.getByLabel("Aktenzeichen").fill("AZ-2026-17");
    // Drop two files on the drop zone, as a person dragging them from the desktop does.
    const files = [
      { name: "bescheid.txt", type: "text/plain", text: "Ihr Bescheid für 2026.\n".repeat(2000) },
      { name: "eicar.txt", type: "text/plain", text: EICAR.toString("latin1") },
    ];
    const transfer = await page.evaluateHandle((list) => {
      const dt = new DataTransfer();
      for (const f of list) dt.items.add(new File([f.text], f.name, { type: f.type }));
      return dt;
    }, files);
    await page.getByTestId("dropzone").dispatchEvent("drop", { dataTransfer: transfer });
    await page.getByText("bescheid.txt (").waitFor();
    // Every state each row shows, in order, as the person sees them change.
    await page.evaluate(() => {
      const seen: Record<string, string[]> = {};
      (window as unknown as { seenStates: typeof seen }).seenStates = seen;
      const record = () => {
        for (const row of Array.from(document.querySelectorAll<HTMLElement>("tr[data-file]"))) {
          const list = (seen[row.dataset.file!] ??= []);
          if (list.at(-1) !== row.dataset.state) list.push(row.dataset.state!);
        }
      };
      new MutationObserver(record).observe(document.body, { subtree: true, childList: true, attributes: true, attributeFilter: ["data-state"] });
    });
    await page.getByRole("button", { name: "Senden" }).click();
    const row = (file: string) => page.locator(`tr[data-file="${file}"]`);
    await row("bescheid.txt").and(page.locator('[data-state="notified"]')).waitFor({ timeout: 45_000 });
    await row("eicar.txt").and(page.locator('[data-state="rejected"]')).waitFor({ timeout: 45_000 });
    assert.match(await row("eicar.txt").innerText(), /abgewiesen – Befund: Eicar-Test-Signature/);
    assert.match(await row("bescheid.txt").innerText(), /zugestellt, benachrichtigt/);
    assert.equal(
      await row("bescheid.txt")
        .locator("progress")
        .evaluate((p) => (p as HTMLProgressElement).value),
      1,
    );
    await screenshotAndCheck(page, "04-send-documents");
    const seen = await page.evaluate(() => (window as unknown as { seenStates: Record<string, string[]> }).seenStates);
    // Polled once a second, so a short state may pass unseen; what was seen came in order.
    const order = ["uploading", "received", "scanning", "held", "delivered", "notified"];
    const shown = seen["bescheid.txt"]!;
    assert.equal(shown[0], "uploading");
    assert.equal(shown.at(-1), "notified");
    assert.ok(shown.length >= 3, `only ${shown.join(" → ")} was shown`);
    assert.deepEqual(
      [...shown].sort((a, b) => order.indexOf(a) - order.indexOf(b)),
      shown,
      `states out of order: ${shown.join(" → ")}`,
    );
    assert.equal(seen["eicar.txt"]![0], "uploading");
    assert.equal(seen["eicar.txt"]!.at(-1), "rejected");
    assert.ok(!seen["eicar.txt"]!.includes("delivered"), "the infected file was shown as delivered");

    // What the page showed is what happened: one document delivered by this person, one rejected.
    const docs = (await stack.api<{ documents: { filename: string; state: string; source: string; submittedBy: string; signature: string | null }[] }>("GET", `/api/v1/organisations/${orgId}/documents`)).body.documents;
    const clean = docs.find((d) => d.filename === "bescheid.txt");
    assert.equal(clean?.state, "delivered");
    assert.equal(clean?.source, "console");
    assert.equal(clean?.submittedBy, admin.userId);
    assert.equal(docs.find((d) => d.filename === "eicar.txt")?.state, "rejected");
    await waitFor("the clerk's e-mail", () => stack.smtp.messages.some((m) => JSON.stringify(m.to).includes("clara@schule.example")));
    await page.context().close();
  });

  it("sends a new version of a document by its reference, and names Kuvert's version in the footer", async () => {
    const page = await open();
    await signIn(page, admin);
    assert.equal((await page.getByTestId("version").innerText()).trim(), `Kuvert ${version}`);
    await page.getByRole("link", { name: "Dokumente senden" }).click();
    await page.getByRole("checkbox", { name: /Schule am See/ }).check();
    const newVersion = page.getByRole("checkbox", { name: /Neue Fassung/ });
    assert.equal(await newVersion.isDisabled(), true, "without a reference there is nothing to replace");
    await page.getByLabel("Art des Dokuments").fill("Bescheid");
    await page.getByLabel("Aktenzeichen").fill("AZ-2026-17");
    await newVersion.check();
    await page.locator("#doc-files").setInputFiles({ name: "bescheid-korrigiert.txt", mimeType: "text/plain", buffer: Buffer.from("Ihr korrigierter Bescheid für 2026.\n".repeat(2000)) });
    await page.getByRole("button", { name: "Senden" }).click();
    const row = page.locator('tr[data-file="bescheid-korrigiert.txt"]');
    await row.and(page.locator('[data-state="notified"]')).waitFor({ timeout: 45_000 });
    assert.match(await row.innerText(), /\(Version 2\)/);
    const docs = (await stack.api<{ documents: { id: string; filename: string; version: number; supersedes: string | null; supersededBy: string | null }[] }>("GET", `/api/v1/organisations/${orgId}/documents`)).body.documents;
    const first = docs.find((d) => d.filename === "bescheid.txt")!;
    const second = docs.find((d) => d.filename === "bescheid-korrigiert.txt")!;
    assert.deepEqual([second.version, second.supersedes, first.supersededBy], [2, first.id, second.id]);
    await page.context().close();
  });

  it("shows the status page: services, queues, e-mails given up", async () => {
    const page = await open();
    await signIn(page, admin);
    await page.getByRole("link", { name: "Status" }).click();
    await page.getByRole("heading", { name: "Zustand der Dienste" }).waitFor();
    await page.getByRole("cell", { name: "documents" }).waitFor();
    for (const check of ["database", "homeserver", "scanner", "mail"]) assert.ok(await page.locator("ul.checks").getByText(check, { exact: true }).isVisible(), `${check} is not shown`);
    assert.ok(await page.getByText("Keine aufgegebenen E-Mails.").isVisible());
    // An e-mail the outbox gave up on appears (the page looks again by itself) and can be sent again.
    const db = await openDatabase({ url: stack.config.database.url, embeddedDir: "", poolSize: 1 });
    let id: string;
    try {
      id = (
        await db.query<{ id: string }>(
          `INSERT INTO mail_outbox (kind, recipient, batch_key, items, state, attempts, last_error, created_at)
           VALUES ('alert', 'postmaster@body.example', 'alert||', '[{"title":"Test"}]', 'dead', 5, '452 mailbox full', now() - interval '1 hour') RETURNING id`,
        )
      ).rows[0]!.id;
    } finally {
      await db.close();
    }
    const retry = page.getByRole("button", { name: "Erneut senden: postmaster@body.example" });
    await retry.waitFor({ timeout: 15_000 });
    assert.ok(await page.getByRole("cell", { name: "452 mailbox full" }).isVisible());
    await screenshotAndCheck(page, "05-status");
    await retry.click();
    await page.getByText(`E-Mail ${id} wird erneut gesendet.`).waitFor();
    await page.getByText("Keine aufgegebenen E-Mails.").waitFor();
    await waitFor("the e-mail sent again", () => stack.smtp.messages.some((m) => JSON.stringify(m.to).includes("postmaster@body.example")));
    await focusIsVisible(page);
    // English is one choice away.
    await page.getByLabel("Sprache").selectOption("en");
    await page.getByRole("heading", { name: "Health of the services" }).waitFor();
    assert.ok(await page.getByRole("link", { name: "Send documents" }).isVisible());
    await screenshotAndCheck(page, "06-status-english");
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByRole("heading", { name: "Sign in with your Matrix account" }).waitFor();
    await page.context().close();
  });

  it("lets the dpo filter, export and verify the audit log, and nothing else", async () => {
    const page = await open();
    await signIn(page, dpo);
    await page.getByRole("heading", { name: "Protokoll" }).waitFor();
    const nav = await page.getByRole("navigation").getByRole("link").allInnerTexts();
    assert.deepEqual(nav, ["Protokoll"]);
    await page.getByLabel("Aktion").fill("document.*");
    await page.getByRole("button", { name: "Filtern" }).click();
    await page.getByRole("cell", { name: "document.rejected" }).first().waitFor();
    const actions = await page.locator("table.audit tbody tr td:nth-child(4)").allInnerTexts();
    assert.ok(actions.length > 0 && actions.every((a) => a.startsWith("document.")), actions.join(", "));
    // The finding of the rejected document is in its entry's details.
    const rejected = page.locator("table.audit tbody tr").filter({ hasText: "document.rejected" }).first();
    await rejected.getByText("anzeigen").click();
    assert.match(await rejected.locator("pre").innerText(), /Eicar-Test-Signature/);
    await page.getByRole("button", { name: "Hash-Kette prüfen" }).click();
    const verified = page.getByTestId("verify-result");
    await verified.waitFor();
    assert.match(await verified.innerText(), /Das Protokoll ist unversehrt: \d+ Einträge/);
    await screenshotAndCheck(page, "07-audit");
    const [download] = await Promise.all([page.waitForEvent("download"), page.getByRole("link", { name: "Als CSV exportieren" }).click()]);
    assert.match(download.suggestedFilename(), /^kuvert-audit-\d{4}-\d{2}-\d{2}\.csv$/);
    const csv = readFileSync((await download.path())!, "utf8");
    assert.ok(csv.startsWith("seq,at,actor,action,organisation_id,object,outcome,details,prev_hash,hash\n"));
    assert.match(csv, /"console\.sign-in"/);
    assert.match(csv, /"document\.rejected"/);
    await page.context().close();
  });

  it("refuses a clerk the console with a page that says why", async () => {
    const page = await open();
    await signIn(page, clerk);
    await page.getByRole("heading", { name: "Kein Zugang zur Konsole" }).waitFor();
    assert.equal(await page.getByRole("alert").innerText(), `Das Konto ${clerk.userId} hat in Kuvert keine Rolle (admin, staff oder dpo). Die Konsole ist für die Beschäftigten der Stelle; Sachbearbeitende der Organisationen arbeiten im Raum ihrer Organisation in Element.`);
    assert.equal(
      (await page.context().cookies()).some((c) => c.name === "kuvert_session"),
      false,
    );
    await screenshotAndCheck(page, "08-clerk-refused");
    await page.context().close();
  });
});
