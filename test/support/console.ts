// The staff console in tests: accounts made before Kuvert starts (so their roles can be in the
// configuration), OpenID tokens as the browser gets them, sessions, and a headless Chromium.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import type { Page } from "playwright-core";
import type { HomeserverAccess } from "./matrix.ts";
import { uniqueLocalpart } from "./matrix.ts";
import { artifactsDir, repoRoot, type Stack } from "./harness.ts";

export interface Account {
  userId: string;
  localpart: string;
  password: string;
}

/** A user id to put into the configuration now; the account is made later with createAccount. */
export function plannedAccount(prefix: string, serverName: string): Account {
  const localpart = uniqueLocalpart(prefix);
  return { userId: `@${localpart}:${serverName}`, localpart, password: randomBytes(12).toString("base64url") };
}

/** Makes the account through Synapse's admin API (PUT /_synapse/admin/v2/users/{userId}). */
export async function createAccount(hs: HomeserverAccess, account: Account): Promise<void> {
  const res = await fetch(`${hs.url}/_synapse/admin/v2/users/${encodeURIComponent(account.userId)}`, {
    method: "PUT",
    headers: { authorization: `Bearer ${hs.adminToken}`, "content-type": "application/json" },
    body: JSON.stringify({ password: account.password, displayname: account.localpart, admin: false }),
  });
  if (!res.ok) throw new Error(`creating ${account.userId}: ${res.status} ${await res.text()}`);
}

/** Logs in with the password and asks for an OpenID token (CS API POST /user/{userId}/openid/request_token). */
export async function openIdToken(hs: HomeserverAccess, account: Account): Promise<{ access_token: string; matrix_server_name: string; token_type: string; expires_in: number }> {
  const login = await fetch(`${hs.url}/_matrix/client/v3/login`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ type: "m.login.password", identifier: { type: "m.id.user", user: account.localpart }, password: account.password }),
  });
  const { access_token: accessToken } = (await login.json()) as { access_token: string };
  const res = await fetch(`${hs.url}/_matrix/client/v3/user/${encodeURIComponent(account.userId)}/openid/request_token`, {
    method: "POST",
    headers: { authorization: `Bearer ${accessToken}`, "content-type": "application/json" },
    body: "{}",
  });
  return (await res.json()) as { access_token: string; matrix_server_name: string; token_type: string; expires_in: number };
}

export interface ConsoleResponse<T = Record<string, unknown>> {
  status: number;
  body: T;
  headers: Headers;
}

/** A request to Kuvert as the console makes it: the session cookie, and the console header unless told not to. */
export async function consoleRequest<T = Record<string, unknown>>(stack: Stack, method: string, path: string, opts: { cookie?: string | undefined; body?: unknown; header?: boolean; contentType?: string } = {}): Promise<ConsoleResponse<T>> {
  const headers: Record<string, string> = {};
  if (opts.cookie) headers.cookie = opts.cookie;
  if (opts.header !== false) headers["x-kuvert-console"] = "1";
  let body: string | undefined;
  if (opts.body !== undefined) {
    headers["content-type"] = opts.contentType ?? "application/json";
    body = typeof opts.body === "string" ? opts.body : JSON.stringify(opts.body);
  }
  const res = await fetch(`${stack.publicUrl}${path}`, { method, headers, body });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON
  }
  return { status: res.status, body: parsed as T, headers: res.headers };
}

/** Signs in with an OpenID token; answers the response and the cookie to send back ("name=value"). */
export async function signIn(stack: Stack, token: unknown, opts: { header?: boolean } = {}): Promise<ConsoleResponse & { cookie: string | undefined }> {
  const res = await consoleRequest(stack, "POST", "/api/v1/session", { body: token, ...opts });
  const setCookie = res.headers.get("set-cookie");
  return { ...res, cookie: setCookie ? setCookie.split(";")[0] : undefined };
}

/** Chromium from Debian, headless; playwright-core never downloads a browser. */
export const chromiumOptions = {
  executablePath: "/usr/lib/chromium/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
};

/** Where the browser tests put their screenshots (test-artifacts/console/, not committed). */
export const screenshotDir = join(artifactsDir, "console");

/** The console as built by scripts/setup.sh; built here if this checkout has not been, and the screenshot folder made. */
export function ensureConsoleBuilt(): void {
  if (!existsSync(join(repoRoot, "web", "console", "dist", "index.html"))) {
    execFileSync(process.execPath, [join(repoRoot, "node_modules", "vite", "bin", "vite.js"), "build", "--config", "web/console/vite.config.ts"], { cwd: repoRoot, stdio: "inherit" });
  }
  mkdirSync(screenshotDir, { recursive: true });
}

/** Takes a screenshot, and checks what a screen reader and a keyboard user need on every page shown. */
export async function screenshotAndCheck(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(screenshotDir, `${name}.png`), fullPage: true });
  const unlabelled = await page.evaluate(() =>
    Array.from(document.querySelectorAll<HTMLInputElement>("input, select, textarea"))
      .filter((el) => (el.labels?.length ?? 0) === 0 && !el.getAttribute("aria-label"))
      .map((el) => el.outerHTML),
  );
  assert.deepEqual(unlabelled, [], `${name}: form fields without a label`);
  const nameless = await page.evaluate(() =>
    Array.from(document.querySelectorAll("button, a[href]"))
      .filter((el) => !(el.textContent ?? "").trim() && !el.getAttribute("aria-label"))
      .map((el) => el.outerHTML),
  );
  assert.deepEqual(nameless, [], `${name}: buttons or links without a name`);
}

/**
 * The elements the keyboard reaches show where the focus is: from `start` on (focused first) for
 * `steps` elements, or, without `start`, the next one Tab reaches.
 */
export async function focusIsVisible(page: Page, start?: string, steps = 1): Promise<void> {
  if (start) await page.locator(start).focus();
  for (let i = 0; i < steps; i++) {
    if (i > 0 || !start) await page.keyboard.press("Tab");
    const style = await page.evaluate(() => {
      const el = document.activeElement as HTMLElement;
      const s = getComputedStyle(el);
      return { tag: el.tagName, text: (el.textContent ?? "").trim().slice(0, 40), outline: s.outlineStyle, width: s.outlineWidth };
    });
    assert.notEqual(style.tag, "BODY", "Tab reaches nothing");
    assert.ok(style.outline !== "none" && style.width !== "0px", `focus on ${style.tag} ${style.text} is invisible: ${JSON.stringify(style)}`);
  }
}
