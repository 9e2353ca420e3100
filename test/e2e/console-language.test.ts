// The console's language in a real browser (Debian's Chromium): the person's own switch, then the
// browser's preferred language, then the configuration (organisations.language, here English),
// then German. Screenshots of the sign-in and the empty organisations page in both languages go to
// test-artifacts/console/.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { chromium, type Browser, type Page } from "playwright-core";
import { chromiumOptions, ensureConsoleBuilt, screenshotAndCheck, type Account } from "../support/console.ts";
import { startStack, type Stack } from "../support/harness.ts";

describe("the console's language", () => {
  let stack: Stack;
  let browser: Browser;
  let admin: Account;

  const open = async (locale: string): Promise<Page> => {
    const context = await browser.newContext({ locale, viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    await page.goto(`${stack.publicUrl}/console/`);
    return page;
  };

  before(async () => {
    ensureConsoleBuilt();
    stack = await startStack({
      name: "console-language",
      configure: (raw) => {
        raw.organisations = { ...(raw.organisations as Record<string, unknown> | undefined), language: "en" };
      },
    });
    admin = { userId: stack.staff.userId, localpart: stack.staff.userId.slice(1).split(":")[0]!, password: stack.staff.password };
    browser = await chromium.launch(chromiumOptions);
  });

  after(async () => {
    await browser?.close();
    await stack?.stop();
  });

  it("follows the browser's preferred language over the configuration", async () => {
    const page = await open("de-DE");
    await page.getByRole("heading", { name: "Anmelden mit Ihrem Matrix-Konto" }).waitFor();
    assert.equal(await page.evaluate(() => document.documentElement.lang), "de");
    await screenshotAndCheck(page, "lang-de-sign-in");
    await page.context().close();
  });

  it("falls back to the configured language when the browser prefers one the console does not speak", async () => {
    const page = await open("fr-FR");
    await page.getByRole("heading", { name: "Sign in with your Matrix account" }).waitFor();
    assert.equal(await page.evaluate(() => document.documentElement.lang), "en");
    await screenshotAndCheck(page, "lang-en-sign-in");
    await page.context().close();
  });

  it("keeps the person's own choice over the browser's, and shows each page's empty state in it", async () => {
    const page = await open("de-DE");
    await page.getByRole("heading", { name: "Anmelden mit Ihrem Matrix-Konto" }).waitFor();
    await page.getByLabel("Sprache").selectOption("en");
    await page.reload();
    await page.getByRole("heading", { name: "Sign in with your Matrix account" }).waitFor();
    await page.locator("#user").fill(admin.localpart);
    await page.locator("#password").fill(admin.password);
    await page.keyboard.press("Enter");
    await page.getByText("No organisations found.").waitFor();
    await screenshotAndCheck(page, "lang-en-organisations-empty");
    await page.getByLabel("Language").selectOption("de");
    await page.getByText("Keine Organisationen gefunden.").waitFor();
    await screenshotAndCheck(page, "lang-de-organisations-empty");
    await page.context().close();
  });
});
