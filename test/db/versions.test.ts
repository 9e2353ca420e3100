// Versions in the database: a Kuvert older than its schema refuses to start with a sentence;
// each document version is a document of its own for retention and the data-subject report.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { globSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { PassThrough } from "node:stream";
import { promisify } from "node:util";
import { after, before, describe, it } from "node:test";
import { stringify } from "yaml";
import { subjectReport } from "../../appservice/audit/subject.ts";
import { parseConfig } from "../../appservice/config/load.ts";
import { openDatabase, type Database } from "../../appservice/db/database.ts";
import { databaseSchemaVersion, migrate } from "../../appservice/db/migrate.ts";
import { KuvertError } from "../../appservice/errors.ts";
import { configureLogging, logger } from "../../appservice/log.ts";
import { Organisations } from "../../appservice/organisations/service.ts";
import { runRetention } from "../../appservice/retention/retention.ts";
import { schemaVersion, version } from "../../appservice/version.ts";
import { tempDir } from "../support/tmp.ts";
import { freshDatabaseUrl } from "../support/database.ts";
import { repoRoot } from "../support/harness.ts";

const DAY = 24 * 60 * 60 * 1000;

describe("versions in the database", () => {
  let db: Database;
  let url: string;

  before(async () => {
    url = (await freshDatabaseUrl("postgres"))!;
    db = await openDatabase({ url, embeddedDir: "", poolSize: 2 });
    await migrate(db);
    await new Organisations(db).apply({ id: "org", name: "Org" }, "test");
  });
  after(() => db.close());

  it("knows its schema version: the highest migration file, in whichever domain's folder", async () => {
    const files = globSync("appservice/*/migrations/[0-9][0-9][0-9]_*.sql", { cwd: repoRoot }).map((f) => basename(f));
    assert.ok(files.length >= 15, "the migrations are found");
    assert.equal(schemaVersion, Math.max(...files.map((f) => Number(f.slice(0, 3)))));
    assert.equal(await databaseSchemaVersion(db), schemaVersion);
    assert.match(version, /^\d+\.\d+\.\d+/);
  });

  it("names its version in every log line", () => {
    const out = new PassThrough();
    const lines: string[] = [];
    out.on("data", (chunk: Buffer) => lines.push(...chunk.toString().trim().split("\n")));
    configureLogging({ level: "info", destination: out });
    logger("test").info("hello");
    configureLogging({ level: "warn" });
    assert.equal((JSON.parse(lines[0]!) as { version: string }).version, version);
  });

  it("refuses a database a newer Kuvert upgraded, with a sentence, in code and on the command line", async () => {
    const newer = (await freshDatabaseUrl("postgres"))!;
    const other = await openDatabase({ url: newer, embeddedDir: "", poolSize: 1 });
    try {
      await migrate(other);
      await other.query("INSERT INTO schema_migrations (version, name) VALUES ($1, 'from_a_newer_kuvert')", [schemaVersion + 1]);
      await assert.rejects(migrate(other), (err: unknown) => {
        assert.ok(err instanceof KuvertError);
        assert.equal(err.errcode, "KUVERT_SCHEMA_TOO_NEW");
        assert.match(err.message, new RegExp(`schema is at version ${schemaVersion + 1}, newer than this Kuvert knows \\(up to ${schemaVersion};`));
        assert.match(err.message, /restore the backup taken before the upgrade/);
        return true;
      });
    } finally {
      await other.close();
    }
    const dir = tempDir("kuvert-schema-");
    writeFileSync(join(dir, "config.yaml"), stringify({ database: { url: newer } }));
    const run = promisify(execFile)(process.execPath, [join(repoRoot, "bin", "kuvert.js"), "--config", join(dir, "config.yaml"), "migrate"], { cwd: dir });
    await assert.rejects(run, (err: { code: number; stderr: string }) => {
      assert.equal(err.code, 1);
      assert.match(err.stderr, /^kuvert: The database schema is at version \d+, newer than this Kuvert knows/);
      return true;
    });
  });

  it("keeps and deletes each version by its own age; a deleted earlier version leaves the later one standing", async () => {
    const insert = (id: string, finishedDaysAgo: number, v: number, supersedes: string | null) =>
      db.query(
        `INSERT INTO documents (id, direction, organisation_id, source, submitted_by, filename, reference, size, state, finished_at, version, supersedes)
         VALUES ($1, 'outbound', 'org', 'api', '@anna:example.org', $1, 'AZ-1', 1, 'delivered', $2, $3, $4)`,
        [id, new Date(Date.now() - finishedDaysAgo * DAY), v, supersedes],
      );
    await insert("doc_v1", 120, 1, null);
    await insert("doc_v2", 10, 2, "doc_v1");
    await db.query("UPDATE documents SET superseded_by = 'doc_v2' WHERE id = 'doc_v1'");

    const report = await subjectReport(db, "@anna:example.org", { actor: "test" });
    const sent = report.sections.find((s) => s.name === "documentsSent")!.rows;
    assert.deepEqual(
      sent.map((r) => [r.id, r.version, r.supersedes]),
      [
        ["doc_v1", 1, null],
        ["doc_v2", 2, "doc_v1"],
      ],
      "each version is a document of its own",
    );

    const staging = tempDir("kuvert-staging-");
    const counts = await runRetention(db, parseConfig({ documents: { stagingDir: staging }, retention: { documentDays: 90 } }));
    assert.equal(counts?.documents, 1);
    const left = (await db.query<{ id: string; supersedes: string | null; version: number }>("SELECT id, supersedes, version FROM documents WHERE id LIKE 'doc_v%'")).rows;
    assert.deepEqual(left, [{ id: "doc_v2", supersedes: null, version: 2 }]);
  });
});
