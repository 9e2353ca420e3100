// The pure parts of video consultations: base32, Element's widget and layout shapes, the
// power-level decision, guest tokens.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { jwtVerify } from "jose";
import { GUEST_LINK_AUDIENCE, jitsiRoomName, signGuestLinkToken, signGuestToken, verifyGuestLinkToken } from "../../appservice/calls/guest-token.ts";
import { base32, base32Decode, conferenceIdFor, layoutWithCall, layoutWithoutCall, newWidgetId, permissionProblems, widgetContent, widgetUrl } from "../../appservice/calls/widget.ts";

describe("base32 (RFC 4648, no padding)", () => {
  it("matches the RFC's test vectors and round-trips room ids", () => {
    const vectors: [string, string][] = [
      ["", ""],
      ["f", "MY"],
      ["fo", "MZXQ"],
      ["foo", "MZXW6"],
      ["foob", "MZXW6YQ"],
      ["fooba", "MZXW6YTB"],
      ["foobar", "MZXW6YTBOI"],
    ];
    for (const [plain, encoded] of vectors) {
      assert.equal(base32(plain), encoded);
      assert.equal(base32Decode(encoded), plain);
    }
    const roomId = "!OGEhHVWSdvArJzumhm:matrix.org";
    assert.equal(base32Decode(base32(roomId)), roomId);
    assert.equal(base32Decode(base32(roomId).toLowerCase()), roomId, "Jitsi lower-cases room names; decoding does not care");
    assert.equal(base32Decode("not base32!"), null);
  });
});

describe("Element's Jitsi widget", () => {
  it("uses the room id as the conference with membership checks, and an unguessable one without", () => {
    assert.equal(conferenceIdFor("!a:b", "openidtoken-jwt"), base32("!a:b"));
    const random = conferenceIdFor("!a:b", null);
    assert.match(random, /^Jitsi[A-Z][a-z]{23}$/);
    assert.notEqual(conferenceIdFor("!a:b", null), random);
    assert.match(newWidgetId(), /^[A-Za-z0-9]{24}$/);
  });

  it("builds the wrapper URL as getLocalJitsiWrapperUrl does, with confId in the query", () => {
    const url = widgetUrl("https://chat.example.org", "ABC", null);
    assert.ok(url.startsWith("https://chat.example.org/jitsi.html?confId=ABC#conferenceDomain=$domain&conferenceId=$conferenceId&"));
    assert.ok(url.endsWith("&supportsScreensharing=true&language=$org.matrix.msc2873.client_language"), "no auth parameter without auth");
    assert.ok(widgetUrl("https://chat.example.org/element/", "ABC", "openidtoken-jwt").startsWith("https://chat.example.org/element/jitsi.html?confId=ABC#"));
    assert.ok(widgetUrl("https://chat.example.org/", "ABC", "openidtoken-jwt").endsWith("&auth=openidtoken-jwt"));
  });

  it("leaves auth out of the data without membership checks, as JSON drops Element's undefined", () => {
    const content = widgetContent({ elementBaseUrl: "https://e/", domain: "meet.example.org", conferenceId: "JitsiAbc", roomName: "Room", auth: null });
    assert.deepEqual(content.data, { conferenceId: "JitsiAbc", roomName: "Room", isAudioOnly: false, isVideoChannel: false, domain: "meet.example.org" });
    assert.equal(content.type, "jitsi");
  });

  it("pins the call first at the top and keeps other widgets' places; removing takes only its entry", () => {
    const before = { widgets: { other: { container: "top", index: 0, width: 50, height: 30 }, side: { container: "right" } } };
    const withCall = layoutWithCall(before, "call");
    assert.deepEqual(withCall, {
      widgets: { other: { container: "top", index: 1, width: 50, height: 30 }, side: { container: "right" }, call: { container: "top", index: 0, width: 100, height: 40 } },
    });
    assert.deepEqual(layoutWithoutCall(withCall, "call"), { widgets: { other: { container: "top", index: 1, width: 50, height: 30 }, side: { container: "right" } } });
    assert.deepEqual(layoutWithCall(null, "call"), { widgets: { call: { container: "top", index: 0, width: 100, height: 40 } } });
  });
});

describe("who may start a call", () => {
  const pl = { users: { "@bot:x": 100, "@staff:x": 50 }, users_default: 0, state_default: 50, events: { "im.vector.modular.widgets": 50, "io.element.widgets.layout": 50 } };

  it("lets clerks and staff start calls through Kuvert, and asks others for the widget level", () => {
    assert.deepEqual(permissionProblems(pl, "@bot:x", "@clerk:x", true), []);
    assert.deepEqual(permissionProblems(pl, "@bot:x", "@staff:x", false), []);
    assert.deepEqual(permissionProblems(pl, "@bot:x", "@visitor:x", false), [{ who: "sender", type: "im.vector.modular.widgets", required: 50, has: 0 }]);
    assert.deepEqual(permissionProblems(pl, "@bot:x", null, true), [], "API calls: only the bot's level counts");
  });

  it("names the bot's missing levels for both the widget and the layout", () => {
    const lowered = { ...pl, users: { "@bot:x": 40 }, events: { "im.vector.modular.widgets": 50 } };
    assert.deepEqual(permissionProblems(lowered, "@bot:x", null, true), [
      { who: "bot", type: "im.vector.modular.widgets", required: 50, has: 40 },
      { who: "bot", type: "io.element.widgets.layout", required: 50, has: 40 },
    ]);
  });
});

describe("guest tokens", () => {
  const secret = "unit-test-secret-0123456789";
  const claims = (expiresAt: Date) => ({ linkId: "link-1", appId: "kuvert", domain: "meet.example.org", conferenceId: "MZXW6YTBOI", guestName: "Gerda", notBefore: new Date(Date.now() - 1000), expiresAt });

  it("verifies a link token with the secret and refuses another secret, another domain and expiry with reasons", async () => {
    const token = await signGuestLinkToken(secret, claims(new Date(Date.now() + 60_000)));
    const ok = await verifyGuestLinkToken(secret, "kuvert", "meet.example.org", token);
    assert.ok(ok.ok);
    assert.equal(ok.payload.room, jitsiRoomName("MZXW6YTBOI"));
    assert.equal(ok.payload.room, "mzxw6ytboi");
    assert.equal(ok.payload.aud, GUEST_LINK_AUDIENCE);
    assert.deepEqual(await verifyGuestLinkToken("another-secret-0123456789", "kuvert", "meet.example.org", token), { ok: false, reason: "invalid" });
    assert.deepEqual(await verifyGuestLinkToken(secret, "kuvert", "other.example.org", token), { ok: false, reason: "invalid" });
    const expired = await signGuestLinkToken(secret, { ...claims(new Date(Date.now() - 1000)), notBefore: new Date(Date.now() - 60_000) });
    assert.deepEqual(await verifyGuestLinkToken(secret, "kuvert", "meet.example.org", expired), { ok: false, reason: "expired", linkId: "link-1" });
    const [header, , signature] = token.split(".");
    const none = `${Buffer.from(JSON.stringify({ alg: "none" })).toString("base64url")}.${token.split(".")[1]}.`;
    assert.equal((await verifyGuestLinkToken(secret, "kuvert", "meet.example.org", none)).ok, false, "alg none is refused");
    assert.equal((await verifyGuestLinkToken(secret, "kuvert", "meet.example.org", `${header}.e30.${signature}`)).ok, false);
  });

  it("keeps the two kinds apart: a join token is no link token, and a link token does not check with the app secret", async () => {
    const join = await signGuestToken(secret, claims(new Date(Date.now() + 60_000)));
    assert.deepEqual(await verifyGuestLinkToken(secret, "kuvert", "meet.example.org", join), { ok: false, reason: "invalid" });
    const { payload } = await jwtVerify(join, new TextEncoder().encode(secret), { algorithms: ["HS256"], audience: "kuvert", issuer: "kuvert" });
    assert.equal(payload.room, "mzxw6ytboi");
    const link = await signGuestLinkToken(secret, claims(new Date(Date.now() + 60_000)));
    await assert.rejects(jwtVerify(link, new TextEncoder().encode(secret)), "Prosody, holding the app secret, cannot verify a link token");
  });
});
