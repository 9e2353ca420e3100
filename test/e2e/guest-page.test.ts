// The guest page in Chromium (playwright-core with the system's browser; it never downloads
// one). A small HTTP server stands in for the configured Jitsi server: it serves an
// external_api.js whose JitsiMeetExternalAPI records its constructor arguments and opens the
// conference frame on that server, as the real IFrame API does.
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { decodeJwt } from "jose";
import { chromium, type Browser, type Page } from "playwright-core";
import { signGuestLinkToken } from "../../appservice/calls/guest-token.ts";
import { artifactsDir, startStack, type Stack } from "../support/harness.ts";

const SECRET = "guest-page-secret-0123456789abcdef";

const fakeExternalApi = `
window.__jitsi = [];
window.JitsiMeetExternalAPI = function (domain, options) {
  const { parentNode, ...rest } = options;
  window.__jitsi.push({ domain, options: rest, parentId: parentNode && parentNode.id });
  const frame = document.createElement("iframe");
  frame.src = location.protocol + "//" + domain + "/" + encodeURIComponent(options.roomName) + "?jwt=" + encodeURIComponent(options.jwt);
  frame.allow = "camera; microphone; display-capture";
  parentNode.appendChild(frame);
  window.__listeners = {};
  this.addListener = function (name, listener) { window.__listeners[name] = listener; };
  this.dispose = function () { frame.remove(); };
};
`;

describe("the guest page", () => {
  let stack: Stack;
  let jitsi: Server;
  let jitsiHost: string;
  let browser: Browser;
  let callId: string;
  const requests: string[] = [];
  const shots = join(artifactsDir, "screenshots");

  const open = async (token: string, lang = ""): Promise<Page> => {
    const page = await browser.newPage();
    await page.goto(`${stack.publicUrl}/call/${lang}#${token}`);
    return page;
  };
  const link = async (name: string) => {
    const res = await stack.api<{ id: string; url: string }>("POST", `/api/v1/calls/${callId}/guest-links`, { name, email: `${name.toLowerCase().replace(/\s+/g, ".")}@example.net` });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    return { id: res.body.id, token: new URL(res.body.url).hash.slice(1) };
  };

  before(async () => {
    jitsi = createServer((req, res) => {
      requests.push(req.url ?? "");
      if (req.url === "/external_api.js") {
        res.writeHead(200, { "content-type": "text/javascript" }).end(fakeExternalApi);
        return;
      }
      res.writeHead(200, { "content-type": "text/html" }).end("<!DOCTYPE html><title>conference</title><p>Jitsi stand-in</p>");
    });
    await new Promise<void>((resolve) => jitsi.listen(0, "127.0.0.1", resolve));
    jitsiHost = `127.0.0.1:${(jitsi.address() as AddressInfo).port}`;
    stack = await startStack({
      name: "guest-page",
      configure: (raw) => {
        raw.calls = { jitsiDomain: jitsiHost, jitsiUrl: `http://${jitsiHost}`, appSecret: SECRET, membershipCheck: false };
      },
    });
    const org = await stack.api("POST", "/api/v1/organisations", { id: "musterstadt", name: "Gemeinde Musterstadt", clerks: [] });
    assert.equal(org.status, 201);
    await stack.roomOf("musterstadt");
    const call = await stack.api<{ call: { id: string; conferenceId: string } }>("POST", "/api/v1/organisations/musterstadt/call");
    assert.equal(call.status, 201, JSON.stringify(call.body));
    assert.match(call.body.call.conferenceId, /^Jitsi[A-Z][a-z]{23}$/, "without membership checks, Element's random conference id");
    callId = call.body.call.id;
    mkdirSync(shots, { recursive: true });
    browser = await chromium.launch({
      executablePath: "/usr/lib/chromium/chromium",
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
    });
  });
  after(async () => {
    await browser?.close();
    await stack?.stop();
    await new Promise((resolve) => jitsi?.close(resolve));
  });

  it("serves the page with a Content-Security-Policy that allows exactly the configured Jitsi origin", async () => {
    const res = await fetch(`${stack.publicUrl}/call/`);
    assert.equal(res.status, 200);
    const csp = res.headers.get("content-security-policy") ?? "";
    assert.match(csp, new RegExp(`script-src 'self' http://${jitsiHost.replace(/\./g, "\\.")}(;|$)`));
    assert.match(csp, new RegExp(`frame-src http://${jitsiHost.replace(/\./g, "\\.")}(;|$)`));
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|\*/);
    assert.equal(csp.match(/default-src/g)?.length, 1, "one policy, not the listener's default on top");
    assert.doesNotMatch(csp, /upgrade-insecure-requests/);
  });

  it("joins with a valid link: loads external_api.js from the Jitsi server and connects there with the JWT", async () => {
    const { token } = await link("Gerda Gast");
    const page = await open(token);
    await page.waitForSelector("body[data-state=joining]", { timeout: 15_000 });
    const calls = (await page.evaluate("window.__jitsi")) as { domain: string; options: { roomName: string; jwt: string; userInfo: { displayName: string }; lang: string }; parentId: string }[];
    assert.equal(calls.length, 1);
    assert.equal(calls[0]!.domain, jitsiHost);
    const joinToken = calls[0]!.options.jwt;
    assert.notEqual(joinToken, token, "Jitsi gets a join token from Kuvert, never the link's own token");
    assert.equal(decodeJwt(joinToken).jti, decodeJwt(token).jti, "the join token belongs to the link");
    assert.equal(calls[0]!.options.userInfo.displayName, "Gerda Gast");
    assert.equal(calls[0]!.options.lang, "de");
    assert.equal(calls[0]!.parentId, "conference");
    const room = calls[0]!.options.roomName;
    assert.match(room, /^jitsi[a-z]{24}$/);
    await page.waitForFunction(() => document.querySelector("#conference iframe") !== null);
    const frameRequest = () => requests.find((r) => r.startsWith(`/${room}?`));
    for (let i = 0; i < 50 && !frameRequest(); i++) await new Promise((r) => setTimeout(r, 100));
    assert.ok(requests.includes("/external_api.js"), "the IFrame API came from the configured Jitsi server");
    assert.equal(new URLSearchParams(frameRequest()!.split("?")[1]).get("jwt"), joinToken, "the conference frame connects with the join token");
    assert.match(await page.title(), /Videoberatung mit Gemeinde Musterstadt/);
    await page.screenshot({ path: join(shots, "guest-joining.png") });

    // The guest hangs up (the IFrame API's readyToClose event): the frame goes, a sentence stays.
    await page.evaluate("window.__listeners.readyToClose()");
    await page.waitForSelector("body[data-state=ended]");
    assert.equal(await page.textContent("#message-title"), "Die Videoberatung ist beendet");
    assert.equal(await page.$("#conference iframe"), null);
    assert.equal(await page.isVisible("#conference"), false);
    await page.close();
  });

  it("shows the expired message for an expired link, without a spinner", async () => {
    const { id } = await link("Expired Guest");
    const now = Math.floor(Date.now() / 1000);
    const expired = await signGuestLinkToken(SECRET, {
      linkId: id,
      appId: "kuvert",
      domain: jitsiHost,
      conferenceId: "x",
      guestName: "Expired Guest",
      notBefore: new Date((now - 3600) * 1000),
      expiresAt: new Date((now - 60) * 1000),
    });
    const before = requests.length;
    const page = await open(expired);
    await page.waitForSelector("body[data-state=expired]", { timeout: 15_000 });
    assert.equal(await page.textContent("#message-title"), "Dieser Link ist abgelaufen");
    assert.match((await page.textContent("#message-text")) ?? "", /neuen Link/);
    assert.equal(requests.length, before, "nothing was loaded from Jitsi");
    await page.screenshot({ path: join(shots, "guest-expired.png") });
    await page.close();
  });

  it("shows the revoked and the invalid message, in English too", async () => {
    const { id, token } = await link("Revoked Guest");
    assert.equal((await stack.api("DELETE", `/api/v1/guest-links/${id}`)).status, 200);
    const revoked = await open(token, "?lang=en");
    await revoked.waitForSelector("body[data-state=revoked]", { timeout: 15_000 });
    assert.equal(await revoked.textContent("#message-title"), "This link was withdrawn");
    assert.equal(await revoked.getAttribute("html", "lang"), "en");
    await revoked.screenshot({ path: join(shots, "guest-revoked-en.png") });
    await revoked.close();

    const tampered = await open(`${token.slice(0, -3)}abc`);
    await tampered.waitForSelector("body[data-state=invalid]", { timeout: 15_000 });
    assert.equal(await tampered.textContent("#message-title"), "Dieser Link ist ungültig");
    await tampered.close();
    const empty = await open("");
    await empty.waitForSelector("body[data-state=invalid]", { timeout: 15_000 });
    await empty.close();
  });
});
