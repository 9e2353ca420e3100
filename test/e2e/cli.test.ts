// The command line beside a running Kuvert (PostgreSQL lets both work on one database).
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { after, before, describe, it } from "node:test";
import { parse, stringify } from "yaml";
import { repoRoot, startStack, testServerPattern, waitFor, type Stack } from "../support/harness.ts";
import { tempDir } from "../support/tmp.ts";

describe("command line", () => {
  let stack: Stack;
  let dir: string;
  const kuvert = (...args: string[]) => promisify(execFile)(process.execPath, [join(repoRoot, "bin", "kuvert.js"), "--config", join(dir, "config.yaml"), ...args], { cwd: dir });

  before(async () => {
    stack = await startStack({ name: "cli" });
    dir = tempDir("kuvert-cli-");
    writeFileSync(join(dir, "config.yaml"), stringify({ ...stack.rawConfig, appservice: { ...(stack.rawConfig.appservice as object), registrationFile: join(dir, "registration.yaml") } }));
  });
  after(() => stack.stop());

  it("writes a registration with fresh tokens and never overwrites one without --force", async () => {
    await kuvert("generate-registration");
    const first = parse(readFileSync(join(dir, "registration.yaml"), "utf8")) as { as_token: string; hs_token: string; rate_limited: boolean; namespaces: { users: { regex: string; exclusive: boolean }[] } };
    assert.equal(first.rate_limited, false);
    assert.deepEqual(first.namespaces.users, [{ regex: `@kuvert_.*:${testServerPattern()}`, exclusive: true }]);
    assert.notEqual(first.as_token, first.hs_token);
    await assert.rejects(kuvert("generate-registration"), /exists already.*--force/s);
    assert.equal((parse(readFileSync(join(dir, "registration.yaml"), "utf8")) as { as_token: string }).as_token, first.as_token, "unchanged");
    await kuvert("generate-registration", "--force");
    assert.notEqual((parse(readFileSync(join(dir, "registration.yaml"), "utf8")) as { as_token: string }).as_token, first.as_token);
  });

  it("creates, lists, shows and archives organisations, and the running Kuvert makes their rooms", async () => {
    const created = await kuvert("org", "create", "gemeinde-x", "--name", "Gemeinde X", "--tag", "municipalities", "--clerk", "Anna Beispiel anna@x.example @anna:kuvert.test");
    assert.match(created.stdout, /^created: gemeinde-x/);
    const again = await kuvert("org", "create", "gemeinde-x", "--name", "Gemeinde X", "--tag", "municipalities", "--clerk", "Anna Beispiel anna@x.example @anna:kuvert.test");
    assert.match(again.stdout, /^unchanged: gemeinde-x/);
    const roomId = await stack.roomOf("gemeinde-x");
    const shown = await kuvert("org", "show", "gemeinde-x");
    assert.match(shown.stdout, new RegExp(`room:   ${roomId.replace(/[.*+?^${}()|[\]\\!]/g, "\\$&")} \\(ready\\)`));
    assert.match(shown.stdout, /Anna Beispiel {2}anna@x\.example {2}@anna:kuvert\.test/);
    const listed = JSON.parse((await kuvert("org", "list", "--tag", "municipalities", "--json")).stdout) as { id: string }[];
    assert.deepEqual(
      listed.map((o) => o.id),
      ["gemeinde-x"],
    );
    await kuvert("org", "archive", "gemeinde-x");
    assert.match((await kuvert("org", "list", "--state", "archived")).stdout, /gemeinde-x +archived/);
  });

  it("imports a CSV with a progress bar and a report, and says which rows failed", async () => {
    writeFileSync(join(dir, "orgs.csv"), "id,name,tags,clerks\nschule-1,Schule 1,schools,\nschule-2,Schule 2,schools,\nBAD ID,Bad,,\n");
    const dry = await kuvert("org", "import", join(dir, "orgs.csv"), "--dry-run");
    assert.match(dry.stdout, /2 of 3 rows valid; nothing changed\./);
    const run = await kuvert("org", "import", join(dir, "orgs.csv")).catch((err: { code: number; stdout: string; stderr: string }) => err);
    assert.equal((run as { code?: number }).code, 2, "exit code 2: some rows failed");
    assert.match(run.stdout, /line 4 BAD ID: KUVERT_INVALID_INPUT: id: expected a slug/);
    assert.match(run.stdout, /2 created, 0 updated, 0 unchanged, 1 with errors\./);
    assert.match(run.stderr, /Importing \[.*\] 3\/3 organisations/);
    assert.equal((await stack.api("GET", "/api/v1/organisations/schule-2")).status, 200);
  });

  it("answers a data-subject request: a report, and erasure only once the person is no clerk any more", async () => {
    const report = await kuvert("subject", "report", "anna@x.example", "--language", "en");
    assert.match(report.stdout, /gemeinde-x/, "the clerk record names the organisation");
    assert.match(report.stdout, /@anna:kuvert\.test/, "and the person's other identifier");
    const json = JSON.parse((await kuvert("subject", "report", "@anna:kuvert.test", "--json")).stdout) as { sections: { name: string; rows: unknown[] }[] };
    assert.ok(json.sections.find((sec) => sec.name === "clerks")!.rows.length >= 1);
    const dry = await kuvert("subject", "erase", "@anna:kuvert.test").catch((err: { code: number; stdout: string }) => err);
    assert.equal((dry as { code?: number }).code, 2);
    assert.match(dry.stdout, /cannot be undone.*--yes/);
    await assert.rejects(kuvert("subject", "erase", "@anna:kuvert.test", "--yes"), /still an active clerk of organisation gemeinde-x/);
    assert.equal((await stack.api("DELETE", "/api/v1/organisations/gemeinde-x/clerks/%40anna%3Akuvert.test")).status, 200, "removing a clerk works on an archived organisation");
    let erased!: { stdout: string };
    await waitFor(
      "Kuvert to take the clerk out of the room, after which erasure is allowed",
      async () => {
        erased = await kuvert("subject", "erase", "@anna:kuvert.test", "--yes");
        return true;
      },
      30_000,
      1000,
    );
    assert.match(erased.stdout, /^erased: /m);
    assert.match(erased.stdout, /^kept: .*audit/im);
    const audit = await stack.kuvert!.db.query<{ object: string }>("SELECT object FROM audit_log WHERE action = 'subject.erased'");
    assert.equal(audit.rowCount, 1);
    assert.match(audit.rows[0]!.object, /^p:/, "the erasure is audited under the pseudonym only");
  });

  it("explains an invalid configuration and a missing organisation in a sentence", async () => {
    writeFileSync(join(dir, "bad.yaml"), "workers:\n  concurrency: lots\n");
    await assert.rejects(promisify(execFile)(process.execPath, [join(repoRoot, "bin", "kuvert.js"), "--config", join(dir, "bad.yaml"), "config", "check"]), /workers\.concurrency: found "lots", expected a number/);
    await assert.rejects(kuvert("org", "show", "nobody"), /kuvert: There is no organisation with the id nobody\./);
  });
});
