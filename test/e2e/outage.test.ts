// PostgreSQL going away and coming back, and stopping Kuvert with signals. This suite has a
// PostgreSQL cluster of its own, so stopping it disturbs no other suite.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { startPostgres, type PostgresCluster } from "../support/postgres.ts";
import { startStack, waitFor, type Stack } from "../support/harness.ts";

describe("outages and stopping", () => {
  let cluster: PostgresCluster;
  let stack: Stack;
  const ready = async () => {
    const res = await fetch(`http://127.0.0.1:${stack.config.appservice.listener.port}/readyz`).catch(() => undefined);
    return res ? { status: res.status, body: (await res.json()) as { checks: Record<string, { ok: boolean }> } } : undefined;
  };

  before(async () => {
    cluster = await startPostgres();
    process.env.KUVERT_TEST_DATABASE_URL = cluster.url;
    stack = await startStack({ name: "outage", childProcess: true });
  });
  after(async () => {
    await stack.stop();
    cluster.stop();
  });

  it("reports not ready while PostgreSQL is down, and ready again when it is back", async () => {
    await waitFor("ready", async () => (await ready())?.status === 200);
    cluster.pause();
    try {
      let red: Awaited<ReturnType<typeof ready>>;
      await waitFor("readiness to turn red", async () => (red = await ready())?.status === 503, 20_000, 500);
      assert.equal(red!.body.checks.database!.ok, false);
      assert.equal(red!.body.checks.homeserver!.ok, true, "only the database is named");
    } finally {
      cluster.resume();
    }
    await waitFor("readiness to turn green", async () => (await ready())?.status === 200, 30_000, 500);
    const res = await stack.api("POST", "/api/v1/organisations", { id: "after-outage", name: "After" });
    assert.equal(res.status, 201, "Kuvert works on after the database came back");
  });

  it("stops cleanly on SIGTERM", async () => {
    const child = stack.child!;
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    child.kill("SIGTERM");
    const code = await exited;
    assert.equal(code, 0, "a clean stop");
    stack.child = undefined;
    await stack.startKuvert(true);
  });

  it("waits for its work in hand on SIGTERM, and stops at once on a second signal (test homeserver: a send held mid-flight)", async () => {
    const hold = stack.fixture.faults.hold("PUT", /\/send\/m\.room\.message\/kuvert\./);
    try {
      assert.equal((await stack.api("POST", "/api/v1/organisations", { id: "busy", name: "Busy" })).status, 201);
      await hold.waitForHeld(1, 20_000);
      const busy = stack.child!;
      const gone = new Promise<number | null>((resolve) => busy.once("exit", (c) => resolve(c)));
      busy.kill("SIGTERM");
      await new Promise((r) => setTimeout(r, 500));
      assert.equal(busy.exitCode, null, "the first signal waits for the work in hand");
      busy.kill("SIGTERM");
      assert.equal(await gone, 1, "the second signal exits at once");
      stack.child = undefined;
    } finally {
      hold.release();
    }
  });
});
