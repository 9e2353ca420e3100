// What operators and the data protection officer rely on: readiness that tells the truth,
// rate limits and security headers on the public listener, the audit log exported and verified.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { after, before, describe, it } from "node:test";
import { stringify } from "yaml";
import { repoRoot, startStack, waitFor, type Stack } from "../support/harness.ts";
import { tempDir } from "../support/tmp.ts";

interface Ready {
  status: string;
  checks: Record<string, { ok: boolean; detail: string }>;
}

describe("operations", () => {
  let stack: Stack;
  const internal = async () => {
    const res = await fetch(`http://127.0.0.1:${stack.config.appservice.listener.port}/readyz`);
    return { status: res.status, body: (await res.json()) as Ready };
  };

  before(async () => {
    stack = await startStack({
      name: "operations",
      configure: (c) => {
        (c.publicApi as Record<string, unknown>).failedAuthPerMinute = 5;
      },
    });
  });
  after(() => stack.stop());

  it("shows every readiness check on the internal listener, and only ready or not in public", async () => {
    const inside = await internal();
    assert.equal(inside.status, 200, JSON.stringify(inside.body));
    assert.deepEqual(Object.keys(inside.body.checks).sort(), ["database", "homeserver", "mail", "scanner"]);
    assert.ok(Object.values(inside.body.checks).every((c) => c.ok));
    const outside = await stack.api("GET", "/readyz", undefined, { token: null });
    assert.deepEqual(outside.body, { status: "ready" });
  });

  it("turns red when clamd or the SMTP server stops, and green again when they are back", async () => {
    await stack.clamd.pause();
    await stack.smtp.pause();
    try {
      let red!: { status: number; body: Ready };
      await waitFor("readiness to turn red", async () => (red = await internal()).status === 503, 20_000, 500);
      // Each check's result is cached for a few seconds from when it was taken: the scanner's (PING and canaries) may turn red a little after the mail's.
      await waitFor("the scanner check to fail", async () => (red = await internal()).body.checks.scanner?.ok === false, 20_000, 500);
      await waitFor("the mail check to fail too", async () => (red = await internal()).body.checks.mail?.ok === false, 20_000, 500);
      assert.equal(red.body.checks.database!.ok, true);
    } finally {
      await stack.clamd.resume();
      await stack.smtp.resume();
    }
    await waitFor("readiness to turn green", async () => (await internal()).status === 200, 20_000, 500);
  });

  it("serves Prometheus metrics on their own listener, the same ones the README lists", async () => {
    const port = stack.kuvert!.metricsPort;
    assert.ok(port && port !== stack.kuvert!.publicPort && port !== stack.config.appservice.listener.port, "a listener of its own");
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    assert.match(text, /^kuvert_queue_depth\{queue="documents"\} \d+$/m);
    assert.match(text, /^kuvert_homeserver_request_duration_seconds_count\{method="POST",outcome="ok"\} [1-9]\d*$/m, "requests to the homeserver are timed");
    assert.match(text, /^kuvert_transaction_lag_seconds \d/m);
    assert.match(text, /^kuvert_process_resident_memory_bytes \d+/m);
    const publicMetrics = await fetch(`${stack.publicUrl}/metrics`);
    assert.equal(publicMetrics.status, 404, "not on the public listener");
    const { metricList } = await import("../../appservice/metrics.ts");
    const readme = readFileSync(join(repoRoot, "README.md"), "utf8");
    const documented = [...readme.matchAll(/^\| `(kuvert_[a-z0-9_]+)` \| (\w+) \| (.+) \|$/gm)].map((m) => ({ name: m[1]!, type: m[2]!, help: m[3]! }));
    assert.deepEqual(documented, await metricList(), "README's metric table is `kuvert metrics` output");
  });

  it("sends security headers on the public listener", async () => {
    const res = await fetch(`${stack.publicUrl}/healthz`);
    assert.equal(res.headers.get("x-content-type-options"), "nosniff");
    assert.match(res.headers.get("content-security-policy") ?? "", /default-src 'self'/);
    assert.equal(res.headers.get("x-powered-by"), null);
  });

  it("exports the audit log as CSV and JSON Lines and verifies its chain from the command line", async () => {
    assert.equal((await stack.api("POST", "/api/v1/organisations", { id: "audited", name: "Audited" })).status, 201);
    assert.equal((await stack.api("POST", "/api/v1/organisations/audited/clerks", { email: "=1+2@example.org" })).status, 201);
    const dir = tempDir("kuvert-audit-");
    const configFile = join(dir, "config.yaml");
    writeFileSync(configFile, stringify(stack.rawConfig));
    const kuvert = (...args: string[]) => promisify(execFile)(process.execPath, [join(repoRoot, "bin", "kuvert.js"), "--config", configFile, ...args], { cwd: dir });

    const verify = await kuvert("audit", "verify");
    assert.match(verify.stdout, /The audit log is intact: \d+ rows, every link holds\./);

    await kuvert("audit", "export", "--format", "jsonl", "-o", join(dir, "audit.jsonl"));
    const rows = readFileSync(join(dir, "audit.jsonl"), "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { seq: string; action: string; object: string });
    assert.ok(rows.some((r) => r.action === "organisation.created" && r.object === "audited"));
    assert.deepEqual(
      rows.map((r) => Number(r.seq)),
      rows.map((_, i) => i + 1),
      "every row, in order",
    );

    const csv = (await kuvert("audit", "export", "--format", "csv", "--from", "2000-01-01", "--to", "2999-01-01")).stdout;
    const lines = csv.trim().split("\n");
    assert.equal(lines[0], "seq,at,actor,action,organisation_id,object,outcome,details,prev_hash,hash");
    assert.equal(lines.length, rows.length + 1);
    assert.ok(csv.includes(`"'=1+2@example.org"`), "a value that starts like a formula is neutralised for spreadsheets");
    const none = await kuvert("audit", "export", "--from", "2999-01-01");
    assert.equal(none.stdout.trim().split("\n").length, 1, "an empty range has only the header");
    await assert.rejects(kuvert("audit", "export", "--from", "yesterday"), /--from: found "yesterday", expected a time/);
  });

  // Last: afterwards this address is refused for a minute.
  it("slows down token guessing: after a few wrong tokens an address is refused for a while", async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 7; i++) statuses.push((await stack.api("GET", "/api/v1/organisations", undefined, { token: `kvt_guess_${i}` })).status);
    assert.deepEqual(statuses.slice(0, 5), [401, 401, 401, 401, 401]);
    const refused = await stack.api("GET", "/api/v1/organisations", undefined, { token: "kvt_guess_again" });
    assert.equal(refused.status, 429);
    assert.equal(refused.body.errcode, "KUVERT_RATE_LIMITED");
  });
});
