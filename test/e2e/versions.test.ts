// Document versions end to end: a corrected document names the one it replaces; a clerk's
// matrix-js-sdk client sees the new version as a reply to the earlier file and the earlier
// announcement edited to say it was replaced; the API lists the versions, the audit log links
// them, and what cannot be replaced is a clear 409.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { promisify } from "node:util";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { MatrixEvent } from "matrix-js-sdk";
import { createToken } from "../../appservice/tokens/tokens.ts";
import { apiVersion, commit, schemaVersion, version } from "../../appservice/version.ts";
import { tempDir } from "../support/tmp.ts";
import { EICAR } from "../support/clamd.ts";
import { repoRoot, startStack, waitFor, type Stack } from "../support/harness.ts";
import type { TestUser } from "../support/matrix.ts";
import { pdf, zip } from "../support/files.ts";

interface DocumentStatus {
  id: string;
  state: string;
  eventId: string | null;
  version: number;
  supersedes: string | null;
  supersededBy: string | null;
  errcode?: string;
  error?: string;
}

type Content = Record<string, unknown> & { body?: string; "m.relates_to"?: { rel_type?: string; event_id?: string; "m.in_reply_to"?: { event_id?: string } }; "m.new_content"?: { body?: string } };

describe("document versions", () => {
  let stack: Stack;
  let clerk: TestUser;
  let room: string;
  let token: string;
  const first: { id?: string; fileEvent?: string; announcement?: string } = {};
  let second: DocumentStatus;
  const dropDir = tempDir("kuvert-versions-drop-");

  const drop = (org: string, body: Buffer, query: Record<string, string>, headers: Record<string, string> = {}) =>
    fetch(`${stack.publicUrl}/api/v1/organisations/${org}/documents?${new URLSearchParams(query)}`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/octet-stream", ...headers },
      body: new Uint8Array(body),
    }).then(async (res) => ({ status: res.status, body: (await res.json()) as DocumentStatus }));
  const until = async (id: string, states: string[]) => {
    let last: DocumentStatus | undefined;
    await waitFor(
      `document ${id} to reach ${states.join(" or ")}`,
      async () => {
        last = (await stack.api<DocumentStatus>("GET", `/api/v1/documents/${id}`)).body;
        return states.includes(last.state);
      },
      30_000,
    );
    return last!;
  };
  const content = (e: MatrixEvent) => e.getContent() as Content;
  const fromBot = (predicate: (c: Content) => boolean) => clerk.timeline(room).filter((e) => e.getSender() === stack.botUserId && predicate(e.getOriginalContent() as Content));

  before(async () => {
    stack = await startStack({
      name: "versions",
      configure: (c) => {
        c.documents = { ...(c.documents as Record<string, unknown>), dropFolder: { enabled: false, dir: dropDir, stableSeconds: 1, pollSeconds: 1 } };
      },
    });
    clerk = await stack.user("clerk-v");
    await clerk.start();
    for (const id of ["musterstadt", "nachbarort"]) {
      const res = await stack.api("POST", "/api/v1/organisations", { id, name: id, clerks: id === "musterstadt" ? [{ matrixId: clerk.userId, email: "anna@musterstadt.example" }] : [] });
      assert.equal(res.status, 201);
    }
    room = await stack.roomOf("musterstadt");
    await clerk.waitForInvite(room);
    await clerk.join(room);
    await stack.roomOf("nachbarort");
    token = await createToken(stack.kuvert!.db, "levy-system", ["drop"], "test", ["musterstadt", "nachbarort"]);
  });
  after(() => stack.stop());

  it("posts a new version as a reply to the earlier file and edits the earlier announcement", async () => {
    const v1 = await drop("musterstadt", pdf("Bescheid 1"), { filename: "Bescheid.pdf", kind: "Beitragsbescheid", reference: "AZ-7" });
    assert.equal(v1.status, 202, JSON.stringify(v1.body));
    assert.equal(v1.body.version, 1);
    const delivered1 = await until(v1.body.id, ["delivered"]);
    first.id = v1.body.id;
    first.fileEvent = delivered1.eventId!;
    const announcement = await clerk.waitForEvent(room, "the first announcement", (e) => e.getSender() === stack.botUserId && /^Neues Dokument: Beitragsbescheid/.test(String(e.getOriginalContent().body)));
    first.announcement = announcement.getId()!;
    await stack.smtp.waitForMessages(1, 20_000);

    const v2 = await drop("musterstadt", pdf("Bescheid 2, korrigiert"), { filename: "Bescheid korrigiert.pdf", kind: "Beitragsbescheid", reference: "AZ-7", supersedes: first.id });
    assert.equal(v2.status, 202, JSON.stringify(v2.body));
    assert.equal(v2.body.version, 2);
    assert.equal(v2.body.supersedes, first.id);
    second = await until(v2.body.id, ["delivered"]);

    // The reply: CS API §"Rich replies", m.relates_to.m.in_reply_to names the earlier file event.
    const reply = await clerk.waitForEvent(room, "the reply to the earlier file", (e) => content(e)["m.relates_to"]?.["m.in_reply_to"]?.event_id === first.fileEvent);
    assert.equal(reply.getSender(), stack.botUserId);
    const day = new Date().toLocaleDateString("de-DE", { day: "numeric", month: "long", year: "numeric", timeZone: "Europe/Berlin" });
    assert.equal(content(reply).body, `Version 2 von Beitragsbescheid · Aktenzeichen AZ-7 · von levy-system, ersetzt die Fassung vom ${day} – geprüft auf Viren.`);
    const file = await clerk.waitForEvent(room, "the new file", (e) => e.getId() === second.eventId);
    assert.equal(content(file).body, "Bescheid korrigiert.pdf");

    // The edit: CS API §"Event replacements", rel_type m.replace on the earlier announcement.
    const edit = await clerk.waitForEvent(room, "the edit of the first announcement", (e) => content(e)["m.relates_to"]?.rel_type === "m.replace");
    assert.equal(content(edit)["m.relates_to"]?.event_id, first.announcement);
    assert.match(String(content(edit)["m.new_content"]?.body), /^Ersetzt: Beitragsbescheid \(Version 1\) · Aktenzeichen AZ-7 gilt nicht mehr\. Gültig ist Version 2: „Bescheid korrigiert\.pdf“\.$/);
    assert.match(String(content(edit).body), /^\* Ersetzt:/);
    // What Element shows for the earlier announcement once the edit is in.
    await waitFor("the client to apply the edit", () => /^Ersetzt:/.test(String(announcement.getContent().body)));

    // The clerks' e-mail says it is a new version.
    const mails = await stack.smtp.waitForMessages(2, 20_000);
    assert.match(mails[1]!.text ?? "", /Beitragsbescheid – eine neue Fassung \(Version 2\)/);
  });

  it("lists a document's versions and links them in the audit log", async () => {
    for (const id of [first.id!, second.id]) {
      const res = await stack.api<{ current: string; versions: DocumentStatus[] }>("GET", `/api/v1/documents/${id}/versions`, undefined, { token });
      assert.equal(res.status, 200);
      assert.equal(res.body.current, second.id);
      assert.deepEqual(
        res.body.versions.map((v) => [v.id, v.version, v.supersedes, v.supersededBy]),
        [
          [first.id, 1, null, second.id],
          [second.id, 2, first.id, null],
        ],
      );
    }
    const rows = (await stack.kuvert!.db.query<{ action: string; object: string; details: Record<string, unknown> }>("SELECT action, object, details FROM audit_log WHERE object IN ($1, $2) ORDER BY seq", [first.id, second.id])).rows;
    assert.deepEqual(
      rows.find((r) => r.action === "document.superseded"),
      { action: "document.superseded", object: first.id, details: { supersededBy: second.id, version: 1, newVersion: 2 } },
    );
    assert.equal(rows.find((r) => r.action === "document.received" && r.object === second.id)?.details.supersedes, first.id);
    assert.equal(rows.find((r) => r.action === "document.delivered" && r.object === second.id)?.details.supersedes, first.id);
  });

  it("refuses with 409 what cannot be replaced, and changes nothing", async () => {
    const again = await drop("musterstadt", pdf("noch eine"), { filename: "x.pdf", supersedes: first.id! });
    assert.equal(again.status, 409);
    assert.equal(again.body.errcode, "KUVERT_DOCUMENT_ALREADY_REPLACED");
    assert.match(again.body.error!, new RegExp(`replaced already by ${second.id}`));

    const other = await drop("nachbarort", pdf("fremd"), { filename: "y.pdf", supersedes: second.id });
    assert.equal(other.status, 409);
    assert.equal(other.body.errcode, "KUVERT_DOCUMENT_OF_ANOTHER_ORGANISATION");

    const infected = await drop("musterstadt", EICAR, { filename: "eicar.txt" });
    await until(infected.body.id, ["rejected"]);
    const never = await drop("musterstadt", pdf("ersetzt nie Zugestelltes"), { filename: "z.pdf", supersedes: infected.body.id });
    assert.equal(never.status, 409);
    assert.equal(never.body.errcode, "KUVERT_DOCUMENT_NOT_DELIVERED");

    const both = await drop("musterstadt", pdf("beides"), { filename: "z.pdf", supersedes: second.id, supersedesReference: "AZ-7" });
    assert.equal(both.status, 400);
    const unknown = await drop("musterstadt", pdf("unbekannt"), { filename: "z.pdf", supersedesReference: "AZ-nie" });
    assert.equal(unknown.status, 404);
    assert.equal((await stack.kuvert!.db.query("SELECT 1 FROM documents WHERE filename IN ('x.pdf', 'y.pdf', 'z.pdf')")).rowCount, 0, "nothing recorded");
  });

  it("replaces by reference; a rejected correction replaces nothing; a rerun after a crash posts nothing twice", async () => {
    // A correction the scanner rejects leaves the current version current.
    const bad = await drop("musterstadt", EICAR, { filename: "v3.txt", supersedesReference: "AZ-7" });
    assert.equal(bad.status, 202, JSON.stringify(bad.body));
    await until(bad.body.id, ["rejected"]);
    assert.equal((await stack.api<DocumentStatus>("GET", `/api/v1/documents/${second.id}`)).body.supersededBy, null);

    const v3 = await drop("musterstadt", pdf("Bescheid 3"), { filename: "Bescheid 3.pdf", kind: "Beitragsbescheid", reference: "AZ-7", supersedesReference: "AZ-7" }, { "idempotency-key": "v3" });
    assert.equal(v3.status, 202, JSON.stringify(v3.body));
    assert.equal(v3.body.supersedes, second.id);
    assert.equal(v3.body.version, 3);
    await until(v3.body.id, ["delivered"]);
    const retried = await drop("musterstadt", pdf("Bescheid 3"), { filename: "Bescheid 3.pdf", kind: "Beitragsbescheid", reference: "AZ-7", supersedesReference: "AZ-7" }, { "idempotency-key": "v3" });
    assert.equal(retried.status, 202, "a retried upload of the correction answers the first result, not a 409");
    assert.equal(retried.body.id, v3.body.id);

    const count = () => ({
      replies: fromBot((c) => c["m.relates_to"]?.["m.in_reply_to"]?.event_id === second.eventId).length,
      edits: fromBot((c) => c["m.relates_to"]?.rel_type === "m.replace").length,
      files: fromBot((c) => c.msgtype === "m.file").length,
    });
    await waitFor("the third version's events", () => count().replies === 1 && count().edits === 2);
    const before = count();
    // As if Kuvert had crashed after posting but before recording the delivery (the staged copy
    // still there, the delivery not recorded): the work runs again.
    writeFileSync(join(stack.config.documents.stagingDir, v3.body.id), pdf("Bescheid 3"));
    await stack.kuvert!.db.query("UPDATE documents SET state = 'scanning', event_id = NULL, finished_at = NULL WHERE id = $1", [v3.body.id]);
    await stack.kuvert!.db.query("UPDATE document_work SET state = 'pending', run_after = now(), lease_until = NULL WHERE document_id = $1", [v3.body.id]);
    await until(v3.body.id, ["delivered"]);
    await new Promise((r) => setTimeout(r, 1000));
    assert.deepEqual(count(), before, "the same transaction ids: no event twice");
  });

  it("reads supersedes from a batch manifest and refuses a manifest version it does not know", async () => {
    const batch = (files: Record<string, Buffer | string>) => zip(files).then((body) => stack.api<{ id: string; errcode?: string; error?: string }>("POST", "/api/v1/batches", body, { contentType: "application/zip", token }));
    const unknown = await batch({ "manifest.json": JSON.stringify({ version: 2, documents: [{ file: "a.pdf", organisation: "musterstadt" }] }), "a.pdf": pdf("a") });
    assert.equal(unknown.status, 400);
    assert.equal(unknown.body.errcode, "KUVERT_FORMAT_VERSION_UNKNOWN");
    const csvUnknown = await batch({ "manifest.csv": "#version: 9\nfile,organisation\na.pdf,musterstadt\n", "a.pdf": pdf("a") });
    assert.equal(csvUnknown.status, 400);
    assert.equal(csvUnknown.body.errcode, "KUVERT_FORMAT_VERSION_UNKNOWN");

    const ok = await batch({ "manifest.csv": "#version: 1\nfile,organisation,kind,reference,supersedes_reference\nv4.pdf,musterstadt,Beitragsbescheid,AZ-7,AZ-7\n", "v4.pdf": pdf("Bescheid 4") });
    assert.equal(ok.status, 202, JSON.stringify(ok.body));
    let entry: { documentId: string | null; state: string } | undefined;
    await waitFor(
      "the batch entry to be delivered",
      async () => {
        entry = (await stack.api<{ entries: { documentId: string | null; state: string }[] }>("GET", `/api/v1/batches/${ok.body.id}`, undefined, { token })).body.entries[0];
        return entry?.state === "delivered" || entry?.state === "error";
      },
      30_000,
    );
    assert.equal(entry!.state, "delivered", JSON.stringify(entry));
    const versions = await stack.api<{ current: string; versions: DocumentStatus[] }>("GET", `/api/v1/documents/${first.id}/versions`, undefined, { token });
    assert.deepEqual(
      versions.body.versions.map((v) => v.version),
      [1, 2, 3, 4],
    );
    assert.equal(versions.body.current, entry!.documentId);
  });

  it("reads kind, reference and supersedes from a drop-folder description, and refuses one of an unknown format version", async () => {
    const folder = join(dropDir, "musterstadt");
    mkdirSync(folder, { recursive: true });
    // The description first, then the document under its final name (README "Drop folder").
    writeFileSync(join(folder, "Bescheid 5.pdf.kuvert.json"), JSON.stringify({ version: 1, kind: "Beitragsbescheid", reference: "AZ-7", supersedesReference: "AZ-7" }));
    writeFileSync(join(folder, "Bescheid 5.pdf"), pdf("Bescheid 5"));
    writeFileSync(join(folder, "Bescheid 6.pdf.kuvert.json"), JSON.stringify({ version: "2", kind: "Beitragsbescheid" }));
    writeFileSync(join(folder, "Bescheid 6.pdf"), pdf("Bescheid 6"));
    const folderScan = stack.kuvert!.services.documents.dropFolder;
    await waitFor(
      "both dropped files to be handled",
      async () => {
        await folderScan.scanOnce();
        return !existsSync(join(folder, "Bescheid 5.pdf")) && !existsSync(join(folder, "Bescheid 6.pdf"));
      },
      20_000,
      300,
    );
    assert.deepEqual(readdirSync(folder), ["Bescheid 6.pdf.kuvert.json"], "the used description is gone, the refused one stays to be corrected");
    const reason = readFileSync(join(dropDir, "unroutable", "musterstadt", "Bescheid 6.pdf.reason.txt"), "utf8");
    assert.match(reason, /KUVERT_FORMAT_VERSION_UNKNOWN/);
    assert.match(reason, /this Kuvert reads version 1/);

    const row = (await stack.kuvert!.db.query<{ id: string }>("SELECT id FROM documents WHERE filename = 'Bescheid 5.pdf'")).rows[0]!;
    const delivered = await until(row.id, ["delivered"]);
    assert.equal(delivered.version, 5);
    const versions = await stack.api<{ current: string; versions: DocumentStatus[] }>("GET", `/api/v1/documents/${row.id}/versions`, undefined, { token });
    assert.deepEqual(
      versions.body.versions.map((v) => v.version),
      [1, 2, 3, 4, 5],
    );
  });

  it("sends a new version and lists the versions from the command line", async () => {
    const dir = tempDir("kuvert-versions-cli-");
    writeFileSync(join(dir, "Bescheid 6.pdf"), pdf("Bescheid 6 über die Kommandozeile"));
    const kuvert = (...args: string[]) => promisify(execFile)(process.execPath, [join(repoRoot, "bin", "kuvert.js"), ...args, "--url", stack.publicUrl, "--token", token], { cwd: dir });
    const sent = await kuvert("document", "send", join(dir, "Bescheid 6.pdf"), "--org", "musterstadt", "--kind", "Beitragsbescheid", "--reference", "AZ-7", "--supersedes-reference", "AZ-7");
    const match = /^(doc_\S+) accepted \(version 6, replaces (doc_\S+)\)/.exec(sent.stdout);
    assert.ok(match, sent.stdout);
    await until(match[1]!, ["delivered"]);
    const listed = await kuvert("document", "versions", first.id!);
    const lines = listed.stdout.trimEnd().split("\n");
    assert.equal(lines.length, 7);
    assert.match(lines[0]!, new RegExp(`^  version 1 +${first.id} +delivered`));
    assert.match(lines[5]!, new RegExp(`^\\* version 6 +${match[1]} +delivered .*Bescheid 6\\.pdf  \\[AZ-7\\]$`));
    assert.equal(lines[6], `* current: ${match[1]}`);
    await assert.rejects(kuvert("document", "send", join(dir, "Bescheid 6.pdf"), "--org", "musterstadt", "--supersedes", match[2]!), (err: { code: number; stderr: string }) => {
      assert.equal(err.code, 1);
      assert.match(err.stderr, /409 KUVERT_DOCUMENT_ALREADY_REPLACED/);
      return true;
    });
  });

  it("says which Kuvert is speaking: --version, GET /version on both listeners, the metric, the OpenAPI document, the console", async () => {
    const cli = await promisify(execFile)(process.execPath, [join(repoRoot, "bin", "kuvert.js"), "--version"]);
    assert.equal(cli.stdout.trim(), `kuvert ${version} (commit ${commit()}, database schema ${schemaVersion}, API ${apiVersion})`);

    const pub = await fetch(`${stack.publicUrl}/version`);
    assert.equal(pub.status, 200);
    assert.deepEqual(await pub.json(), { version }, "the public listener says the version only");
    const internal = await fetch(`http://127.0.0.1:${stack.kuvert!.appservicePort}/version`);
    assert.deepEqual(await internal.json(), { version, commit: commit(), schemaVersion, apiVersion });

    const metrics = await (await fetch(`http://127.0.0.1:${stack.kuvert!.metricsPort}/metrics`)).text();
    const line = metrics.split("\n").find((l) => l.startsWith("kuvert_build_info{"));
    assert.equal(line, `kuvert_build_info{version="${version}",commit="${commit()}",schema_version="${schemaVersion}",api_version="${apiVersion}"} 1`);

    const openapi = (await (await fetch(`${stack.publicUrl}/api/v1/openapi.json`)).json()) as { info: { version: string; "x-kuvert-version": string }; paths: Record<string, { post?: { parameters: { name: string }[] } }> };
    assert.ok(openapi.paths["/documents/{docId}/versions"], "the versions endpoint is in the OpenAPI document");
    assert.ok(openapi.paths["/organisations/{id}/documents"]?.post?.parameters.some((p) => p.name === "supersedes"));
    assert.equal(openapi.info.version, apiVersion);
    assert.equal(openapi.info["x-kuvert-version"], version);
    const settings = (await (await fetch(`${stack.publicUrl}/console/settings.json`)).json()) as { version: string };
    assert.equal(settings.version, version, "what the console's footer shows");
  });
});
