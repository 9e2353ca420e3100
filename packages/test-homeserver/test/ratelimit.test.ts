// The test homeserver's rate limit fault: Synapse's leaky bucket and the answer of CS API
// §"Rate limiting" (429, M_LIMIT_EXCEEDED, retry_after_ms, Retry-After).
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { TestHomeserver } from "@kuvert/test-homeserver";

describe("test homeserver: rate limiting", () => {
  const hs = new TestHomeserver();
  let token = "";
  before(async () => {
    await hs.start();
    token = (await hs.createUser("limited", "password")).accessToken;
  });
  after(() => hs.stop());

  const whoami = () => fetch(`${hs.url}/_matrix/client/v3/account/whoami`, { headers: { authorization: `Bearer ${token}` } });

  it("allows the burst, then answers 429 with retry_after_ms until the bucket drained", async () => {
    const limit = hs.faults.rateLimit("GET", /\/account\/whoami$/, { perSecond: 5, burst: 2 });
    assert.equal((await whoami()).status, 200);
    assert.equal((await whoami()).status, 200);
    const refused = await whoami();
    assert.equal(refused.status, 429);
    const body = (await refused.json()) as { errcode: string; retry_after_ms: number };
    assert.equal(body.errcode, "M_LIMIT_EXCEEDED");
    assert.ok(body.retry_after_ms > 0 && body.retry_after_ms <= 200, String(body.retry_after_ms));
    assert.equal(refused.headers.get("retry-after"), "1");
    await new Promise((r) => setTimeout(r, body.retry_after_ms + 20));
    assert.equal((await whoami()).status, 200);
    assert.equal(limit.refused(), 1);
    limit.remove();
    for (let i = 0; i < 5; i++) assert.equal((await whoami()).status, 200);
  });
});
