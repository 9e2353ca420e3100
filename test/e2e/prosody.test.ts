// Jitsi's own Prosody asks Kuvert: Debian's Prosody with Jitsi's token library and
// jitsi-contrib's hybrid_matrix_token module (the kit in ../shared/jitsi-prosody), configured
// with exactly the jitsi-prosody environment that docker-compose.yml renders from
// deploy/env.example, except where Kuvert and the secrets are (MATRIX_UVS_URL, JWT_APP_SECRET,
// MATRIX_UVS_AUTH_TOKEN). Clients log in over XMPP-over-WebSocket with the token in the URL, as
// Jitsi Meet does; the focus account creates the conference rooms, as Jicofo would.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { after, before, describe, it } from "node:test";
import { SignJWT } from "jose";
import { parse } from "yaml";
import { signGuestToken } from "../../appservice/calls/guest-token.ts";
import { createToken } from "../../appservice/tokens/tokens.ts";
import { tempDir } from "../support/tmp.ts";
import { environmentOf, interpolateDeep, parseEnvFile, type Json } from "../support/compose.ts";
import { startStack, type Stack } from "../support/harness.ts";
import type { TestUser } from "../support/matrix.ts";
import { XmppRefusal, XmppSession } from "../support/xmpp.ts";

const run = promisify(execFile);
const root = join(import.meta.dirname, "..", "..");
const kit = process.env.KUVERT_JITSI_PROSODY_KIT ?? join(root, "..", "shared", "jitsi-prosody");
const SECRET = "prosody-suite-app-secret-0123456789";
const UVS_TOKEN = "prosody-suite-uvs-token-0123456789";

/** The jitsi-prosody service's environment as the compose stack renders it. */
function stackProsodyEnv(): Record<string, string> {
  const env = parseEnvFile(readFileSync(join(root, "deploy", "env.example"), "utf8"));
  const compose = interpolateDeep(parse(readFileSync(join(root, "docker-compose.yml"), "utf8"), { merge: true }), env, "docker-compose.yml") as Json;
  return environmentOf((compose.services as Record<string, Json>)["jitsi-prosody"]!);
}

if (!existsSync(join(kit, "start.sh"))) {
  describe("Jitsi's Prosody asks Kuvert", { skip: `the Prosody kit is not at ${kit}` }, () => undefined);
} else {
  describe("Jitsi's Prosody asks Kuvert", () => {
    const stackEnv = stackProsodyEnv();
    const domain = new URL(stackEnv.PUBLIC_URL!).hostname;
    let stack: Stack;
    let runDir: string;
    let prosody: Record<string, string>;
    let clerk: TestUser;
    let stranger: TestUser;
    let roomId: string;
    let otherRoomId: string;
    let conference: string;
    let otherConference: string;
    let staffToken: string;
    const open: XmppSession[] = [];

    const wsUrl = (room: string, token: string) => {
      const url = new URL(prosody.XMPP_WEBSOCKET_URL!);
      url.searchParams.set("room", room);
      url.searchParams.set("token", token);
      return url.toString();
    };
    const login = async (room: string, token: string): Promise<XmppSession> => {
      const s = await XmppSession.connect(wsUrl(room, token), prosody.XMPP_DOMAIN!, { mechanism: "ANONYMOUS" });
      open.push(s);
      return s;
    };
    const refusal = async (room: string, token: string): Promise<XmppRefusal> => {
      try {
        (await login(room, token)).close();
      } catch (err) {
        if (err instanceof XmppRefusal) return err;
        throw err;
      }
      assert.fail("Prosody let the session in");
    };
    /** Element's wrapper JWT (Element Web src/vector/jitsi/index.ts, createJWTToken). */
    const elementJwt = (openid: { access_token: string; matrix_server_name: string }, room: string, key = "notused") =>
      new SignJWT({ room: "*", context: { matrix: { token: openid.access_token, room_id: room, server_name: openid.matrix_server_name }, user: { name: "Anna", avatar: "" } } })
        .setProtectedHeader({ alg: "HS256", typ: "JWT" })
        .setIssuer(domain)
        .setSubject(domain)
        .setAudience(`https://${domain}`)
        .sign(new TextEncoder().encode(key));
    const muc = (conf: string, nick: string) => `${conf}@${prosody.XMPP_MUC_DOMAIN}/${nick}`;

    before(async () => {
      stack = await startStack({
        name: "prosody",
        configure: (raw) => {
          raw.calls = { jitsiDomain: domain, widgetBaseUrl: "https://element.example.org/", appSecret: SECRET, appId: stackEnv.JWT_APP_ID, verifyToken: UVS_TOKEN, callMinutes: 60 };
        },
      });
      runDir = tempDir("kuvert-prosody-");
      const keys = ["AUTH_TYPE", "XMPP_DOMAIN", "XMPP_AUTH_DOMAIN", "XMPP_MUC_DOMAIN", "JWT_APP_ID", "JWT_ACCEPTED_ISSUERS", "JWT_ACCEPTED_AUDIENCES", "JWT_ALLOW_EMPTY", "JWT_ENABLE_DOMAIN_VERIFICATION", "MATRIX_UVS_ISSUER", "MATRIX_UVS_SYNC_POWER_LEVELS", "XMPP_CONFIGURATION"];
      const env: Record<string, string> = { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/root", LOG_LEVEL: "info" };
      for (const k of keys) if (stackEnv[k] !== undefined) env[k] = stackEnv[k];
      Object.assign(env, { JWT_APP_SECRET: SECRET, MATRIX_UVS_AUTH_TOKEN: UVS_TOKEN, MATRIX_UVS_URL: stack.publicUrl.replace(/\/$/, "") });
      // Asynchronously: the test homeserver and Kuvert run in this process and must keep answering.
      await run("bash", [join(kit, "start.sh"), "-b", runDir], { env, timeout: 60_000 });
      prosody = parseEnvFile(readFileSync(join(runDir, "env"), "utf8"));

      clerk = await stack.user("clerk");
      stranger = await stack.user("stranger");
      await Promise.all([clerk.start(), stranger.start()]);
      for (const [id, user] of [
        ["musterstadt", clerk],
        ["schule-b", stranger],
      ] as const) {
        assert.equal((await stack.api("POST", "/api/v1/organisations", { id, name: id, clerks: [{ matrixId: user.userId }] })).status, 201);
        const room = await stack.roomOf(id);
        await user.waitForInvite(room);
        await user.join(room);
      }
      roomId = await stack.roomOf("musterstadt");
      otherRoomId = await stack.roomOf("schule-b");
      staffToken = await createToken(stack.kuvert!.db, "prosody-staff", ["staff"], "test");
      const started = await stack.api<{ call: { conferenceId: string } }>("POST", "/api/v1/organisations/musterstadt/call", undefined, { token: staffToken });
      assert.equal(started.status, 201, JSON.stringify(started.body));
      conference = started.body.call.conferenceId.toLowerCase();
      const other = await stack.api<{ call: { conferenceId: string } }>("POST", "/api/v1/organisations/schule-b/call", undefined, { token: staffToken });
      otherConference = other.body.call.conferenceId.toLowerCase();
      // The focus (Jicofo's account) creates the conference rooms: only it may.
      const focus = await XmppSession.connect(wsUrl("", ""), prosody.XMPP_AUTH_DOMAIN!, { mechanism: "PLAIN", username: "focus", password: prosody.FOCUS_PASSWORD! });
      open.push(focus);
      await focus.join(muc(conference, "focus"));
      await focus.join(muc(otherConference, "focus"));
    });
    after(async () => {
      for (const s of open) s.close();
      if (runDir) {
        await run("bash", [join(kit, "stop.sh"), runDir]);
        rmSync(runDir, { recursive: true, force: true });
      }
      await stack?.stop();
    });

    it("admits a clerk with Element's JWT carrying their real OpenID token, into their organisation's conference", async () => {
      const openid = await clerk.client.getOpenIdToken();
      const session = await login(conference, await elementJwt(openid, roomId));
      assert.match(session.jid, new RegExp(`@${prosody.XMPP_DOMAIN!.replace(/\./g, "\\.")}/`));
      await session.join(muc(conference, "anna"));
    });

    it("refuses a member of another organisation for this room", async () => {
      const openid = await stranger.client.getOpenIdToken();
      const refused = await refusal(conference, await elementJwt(openid, roomId));
      assert.equal(refused.condition, "not-allowed");
      assert.match(refused.text, /user not found or not in room/);
    });

    it("refuses forgeries: a made-up OpenID token, and a JWT not signed the way Element signs it", async () => {
      const made = await refusal(conference, await elementJwt({ access_token: "made-up-openid-token", matrix_server_name: "example.org" }, roomId));
      assert.match(made.text, /user not found or not in room/);
      const openid = await clerk.client.getOpenIdToken();
      const signed = await refusal(conference, await elementJwt(openid, roomId, "another-key"));
      assert.match(signed.text, /Invalid signature/);
    });

    it("refuses a clerk's token for another room: another conference, or a room they are not in", async () => {
      const openid = await clerk.client.getOpenIdToken();
      const mismatch = await refusal(otherConference, await elementJwt(openid, roomId));
      assert.match(mismatch.text, /Jitsi room does not match Matrix room/);
      const notTheirs = await refusal(otherConference, await elementJwt(openid, otherRoomId));
      assert.match(notTheirs.text, /user not found or not in room/);
    });

    it("admits a guest's join token to its conference only, and never the link's own token", async () => {
      const call = await stack.api<{ id: string }>("GET", "/api/v1/organisations/musterstadt/call", undefined, { token: staffToken });
      const issued = await stack.api<{ id: string; url: string }>("POST", `/api/v1/calls/${call.body.id}/guest-links`, { name: "Gerda Gast", email: "gerda@example.net" }, { token: staffToken });
      assert.equal(issued.status, 201);
      const linkToken = new URL(issued.body.url).hash.slice(1);
      const session = await stack.api<{ jwt: string; roomName: string }>("POST", "/api/v1/guest/session", { token: linkToken }, { token: null });
      assert.equal(session.status, 200);
      assert.equal(session.body.roomName, conference);
      const guest = await login(conference, session.body.jwt);
      await assert.rejects(guest.join(muc(otherConference, "gerda")), (err: unknown) => err instanceof XmppRefusal && err.condition === "not-allowed" && /room from token/.test(err.text));
      await guest.join(muc(conference, "gerda"));
      const link = await refusal(conference, linkToken);
      assert.equal(link.condition, "not-allowed", "the e-mailed link's token does not open the conference");

      // Revoked: Kuvert's guest page gets no join token any more.
      assert.equal((await stack.api("DELETE", `/api/v1/guest-links/${issued.body.id}`, undefined, { token: staffToken })).status, 200);
      const afterRevoke = await stack.api("POST", "/api/v1/guest/session", { token: linkToken }, { token: null });
      assert.equal(afterRevoke.status, 410);
      assert.equal(afterRevoke.body.errcode, "KUVERT_GUEST_LINK_REVOKED");
    });

    it("refuses a guest's join token once it has expired", async () => {
      const now = Date.now();
      const expired = await signGuestToken(SECRET, { linkId: "expired-link", appId: stackEnv.JWT_APP_ID!, domain, conferenceId: conference, guestName: "Late", notBefore: new Date(now - 600_000), expiresAt: new Date(now - 5_000) });
      const refused = await refusal(conference, expired);
      assert.match(refused.text, /exp/);
    });

    it("refuses the clerk once their organisation is archived", async () => {
      const openid = await clerk.client.getOpenIdToken();
      assert.equal((await stack.api("POST", "/api/v1/organisations/musterstadt/archive")).status, 200);
      const refused = await refusal(conference, await elementJwt(openid, roomId));
      assert.match(refused.text, /user not found or not in room/);
    });
  });
}
