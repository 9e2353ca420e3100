// The drop folder, end to end: files dropped into <dir>/<organisation id>/ are delivered
// once complete and then removed; what cannot be delivered goes to unroutable/ with the
// reason beside it; nothing is taken twice, half, or from outside the folder.
import assert from "node:assert/strict";
import type { KuvertConfig } from "../../appservice/config/schema.ts";
import { randomBytes } from "node:crypto";
import { createReadStream, existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, renameSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { open } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { DropFolder, dropIdempotencyKey } from "../../appservice/documents/folder.ts";
import type { DocumentIntake } from "../../appservice/documents/intake.ts";
import { findOrganisation } from "../../appservice/organisations/store.ts";
import type { Alert } from "../../appservice/staff/staffroom.ts";
import { artifactsDir, startStack, waitFor, type Stack } from "../support/harness.ts";
import { pdf } from "../support/files.ts";

/** A small, valid PDF (so content sniffing says application/pdf). */

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Doc {
  id: string;
  filename: string;
  state: string;
  size: number;
  source: string;
  submittedBy: string;
}

describe("the drop folder", () => {
  const base = join(artifactsDir, "work", `dropfolder-${randomBytes(3).toString("hex")}`);
  const dir = join(base, "drop");
  const outside = join(base, "outside");
  const org = join(dir, "musterstadt");
  let stack: Stack;
  let folder: DropFolder;
  const alerts: Alert[] = [];
  const enabled = (config: KuvertConfig): KuvertConfig => ({ ...config, documents: { ...config.documents, dropFolder: { ...config.documents.dropFolder, enabled: true } } });
  const known = async (id: string) => (await findOrganisation(stack.kuvert!.db, id)) !== null;
  const staffRoom = {
    post: async (alert: Alert) => {
      alerts.push(alert);
      await stack.kuvert!.services.staffRoom.post(alert);
    },
  };

  const documents = async (organisationId = "musterstadt") => {
    const res = await stack.api<{ documents: Doc[] }>("GET", `/api/v1/organisations/${organisationId}/documents?limit=100`);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return res.body.documents;
  };
  const named = async (filename: string) => (await documents()).filter((d) => d.filename === filename);
  const delivered = async (filename: string) => {
    let doc: Doc | undefined;
    await waitFor(
      `${filename} to be delivered`,
      async () => {
        [doc] = await named(filename);
        return doc?.state === "delivered";
      },
      30_000,
    );
    return doc!;
  };
  const unroutable = (folderName: string, name: string) => join(dir, "unroutable", folderName, name);
  const movedAside = async (folderName: string, name: string) => {
    await waitFor(`${folderName}/${name} to be moved to unroutable/`, () => existsSync(`${unroutable(folderName, name)}.reason.txt`), 20_000);
    return readFileSync(`${unroutable(folderName, name)}.reason.txt`, "utf8");
  };

  before(async () => {
    mkdirSync(outside, { recursive: true });
    stack = await startStack({
      name: "dropfolder",
      configure: (c) => {
        // Kuvert's own watcher stays off: the suite runs its own, with a staff room that records alerts.
        c.documents = { ...(c.documents as Record<string, unknown>), dropFolder: { enabled: false, dir, stableSeconds: 1, pollSeconds: 1 } };
      },
    });
    for (const id of ["musterstadt", "archiv"]) {
      const res = await stack.api("POST", "/api/v1/organisations", { id, name: id === "musterstadt" ? "Gemeinde Musterstadt" : "Archivierte Organisation" });
      assert.equal(res.status, 201, JSON.stringify(res.body));
    }
    assert.equal((await stack.api("POST", "/api/v1/organisations/archiv/archive")).status, 200);
    await stack.roomOf("musterstadt");
    mkdirSync(org, { recursive: true });
    folder = new DropFolder(enabled(stack.config), stack.kuvert!.services.documents.intake, staffRoom, known);
    await folder.start();
  });
  after(async () => {
    await folder?.stop();
    await stack?.stop();
  });

  it("delivers a PDF dropped into the organisation's folder and removes it from the folder", async () => {
    const content = pdf("Beitragsbescheid 2026");
    writeFileSync(join(org, "Beitragsbescheid 2026.pdf"), content);
    const doc = await delivered("Beitragsbescheid 2026.pdf");
    assert.equal(doc.size, content.length);
    assert.equal(doc.source, "folder");
    assert.equal(doc.submittedBy, "folder:musterstadt");
    assert.equal(existsSync(join(org, "Beitragsbescheid 2026.pdf")), false, "removed from the drop folder");
    await waitFor("the staging copy to be gone after delivery", () => readdirSync(stack.config.documents.stagingDir).length === 0);
  });

  it("does not take a file that is still being written, and delivers all of it when complete", async () => {
    const full = pdf(`Liste ${"x".repeat(4000)}`);
    const path = join(org, "Liste.pdf");
    const handle = await open(path, "w");
    const pieces = 6;
    const step = Math.ceil(full.length / pieces);
    try {
      for (let i = 0; i < pieces; i++) {
        await handle.write(full.subarray(i * step, (i + 1) * step));
        await handle.sync();
        await sleep(400); // shorter than stableSeconds (1 s)
        assert.equal((await named("Liste.pdf")).length, 0, `not taken while being written (after piece ${i + 1})`);
        assert.ok(existsSync(path), "still in the folder while being written");
      }
    } finally {
      await handle.close();
    }
    const doc = await delivered("Liste.pdf");
    assert.equal(doc.size, full.length, "the whole file, not a part of it");
    assert.equal((await named("Liste.pdf")).length, 1);
    assert.equal(existsSync(path), false);
  });

  it("never takes .part, .tmp and hidden files, and takes them once renamed to their final name", async () => {
    const temporary = [".Rundschreiben.pdf.part", "Rundschreiben.pdf.part", "Anlage.pdf.tmp", "Notiz.pdf~", ".versteckt.pdf"];
    for (const name of temporary) writeFileSync(join(org, name), pdf(name));
    await sleep(3000); // three polls and longer than stableSeconds
    for (const name of temporary) {
      assert.ok(existsSync(join(org, name)), `${name} stays`);
      assert.equal((await named(name)).length, 0, `${name} is not taken`);
    }
    // The convention: write under a temporary name, then rename (atomic).
    renameSync(join(org, ".Rundschreiben.pdf.part"), join(org, "Rundschreiben.pdf"));
    const doc = await delivered("Rundschreiben.pdf");
    assert.equal(doc.size, pdf(".Rundschreiben.pdf.part").length);
    assert.equal(existsSync(join(org, "Rundschreiben.pdf")), false);
    for (const name of temporary.slice(1)) assert.ok(existsSync(join(org, name)), `${name} still stays`);
    assert.equal(folder.dir, dir);
  });

  it("moves a file for an unknown organisation to unroutable/ with the reason, never delivering it", async () => {
    mkdirSync(join(dir, "unknown-org"), { recursive: true });
    writeFileSync(join(dir, "unknown-org", "Bescheid.pdf"), pdf("for nobody"));
    const reason = await movedAside("unknown-org", "Bescheid.pdf");
    assert.ok(existsSync(unroutable("unknown-org", "Bescheid.pdf")), "the file is kept in unroutable/");
    assert.equal(existsSync(join(dir, "unknown-org", "Bescheid.pdf")), false);
    assert.match(reason, /Grund: Es gibt keine Organisation mit der Kennung „unknown-org“/);
    assert.match(reason, /Reason: There is no organisation with the id "unknown-org"/);
    assert.equal((await named("Bescheid.pdf")).length, 0);
    assert.equal((await documents("unknown-org")).length, 0);
    await waitFor("the staff alert", () => alerts.some((a) => a.key === "unroutable:unroutable/unknown-org/Bescheid.pdf" && /unknown-org/.test(a.body)));

    // A second file of the same name does not overwrite the first.
    writeFileSync(join(dir, "unknown-org", "Bescheid.pdf"), pdf("for nobody, again"));
    await movedAside("unknown-org", "Bescheid-1.pdf");
    assert.deepEqual(readFileSync(unroutable("unknown-org", "Bescheid.pdf")), pdf("for nobody"));
    assert.deepEqual(readFileSync(unroutable("unknown-org", "Bescheid-1.pdf")), pdf("for nobody, again"));
  });

  it("moves files intake refuses to unroutable/ with the errcode: empty, wrong type, archived organisation", async () => {
    const exe = Buffer.concat([Buffer.from("MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff", "latin1"), Buffer.alloc(200)]);
    writeFileSync(join(org, "leer.pdf"), Buffer.alloc(0));
    writeFileSync(join(org, "rechnung.pdf"), exe);
    mkdirSync(join(dir, "archiv"), { recursive: true });
    writeFileSync(join(dir, "archiv", "spät.pdf"), pdf("too late"));
    const empty = await movedAside("musterstadt", "leer.pdf");
    assert.match(empty, /KUVERT_EMPTY_FILE/);
    assert.match(empty, /Grund: Die Datei ist leer\./);
    assert.match(empty, /Reason: The document is empty\./);
    const program = await movedAside("musterstadt", "rechnung.pdf");
    assert.match(program, /KUVERT_TYPE_NOT_ALLOWED/);
    assert.match(program, /Reason: Documents of type .* are not accepted/);
    assert.deepEqual(readFileSync(unroutable("musterstadt", "rechnung.pdf")), exe, "kept as it was");
    const archived = await movedAside("archiv", "spät.pdf");
    assert.match(archived, /KUVERT_ORGANISATION_ARCHIVED/);
    for (const name of ["leer.pdf", "rechnung.pdf"]) {
      assert.equal(existsSync(join(org, name)), false);
      assert.equal((await named(name)).length, 0, `${name} is not a document`);
    }
    assert.equal((await documents("archiv")).length, 0);
    await waitFor("one alert per unroutable file", () => ["unroutable/musterstadt/leer.pdf", "unroutable/musterstadt/rechnung.pdf", "unroutable/archiv/spät.pdf"].every((p) => alerts.filter((a) => a.key === `unroutable:${p}`).length === 1));
    await waitFor("nothing refused left in staging", () => readdirSync(stack.config.documents.stagingDir).length === 0);
  });

  it("does not follow links or take anything outside an organisation folder", async () => {
    const secret = pdf("outside the drop folder");
    writeFileSync(join(outside, "geheim.pdf"), secret);
    symlinkSync(join(outside, "geheim.pdf"), join(org, "link.pdf"));
    symlinkSync(outside, join(dir, "verlinkt")); // an "organisation folder" that is a link
    symlinkSync(outside, join(org, "ordner-link"));
    mkdirSync(join(org, "unterordner"), { recursive: true });
    writeFileSync(join(org, "unterordner", "tief.pdf"), pdf("in a sub-folder"));
    writeFileSync(join(dir, "lose.pdf"), pdf("directly in the drop folder"));

    const reason = await movedAside("musterstadt", "link.pdf");
    assert.match(reason, /symbolischer Link/);
    assert.match(reason, /symbolic link/);
    assert.ok(lstatSync(unroutable("musterstadt", "link.pdf")).isSymbolicLink(), "the link itself is moved, not what it points to");
    await movedAside("musterstadt", "ordner-link");
    await sleep(2500);
    assert.deepEqual(readFileSync(join(outside, "geheim.pdf")), secret, "the file outside is untouched");
    assert.ok(existsSync(join(dir, "verlinkt")), "a linked folder is ignored, not entered");
    assert.ok(existsSync(join(org, "unterordner", "tief.pdf")), "sub-folders are not entered");
    assert.ok(existsSync(join(dir, "lose.pdf")), "files directly in the drop folder are not taken");
    for (const name of ["link.pdf", "geheim.pdf", "tief.pdf", "lose.pdf"]) assert.equal((await named(name)).length, 0, `${name} is not a document`);
  });

  it("after a crash between acceptance and deletion, the next start finds the first document and only removes the file", async () => {
    await folder.stop();
    const path = join(org, "Absturz.pdf");
    writeFileSync(path, pdf("accepted, then the process died"));
    const stat = statSync(path);
    // What the folder did before the crash: accepted, with the key it uses, but not yet deleted.
    const first = await stack.kuvert!.services.documents.intake.accept({
      organisationId: "musterstadt",
      filename: "Absturz.pdf",
      source: "folder",
      submittedBy: "folder:musterstadt",
      idempotency: { scope: "folder", key: dropIdempotencyKey("musterstadt", "Absturz.pdf", stat) },
      content: createReadStream(path),
    });
    assert.equal(first.replayed, false);

    // The next start: a new DropFolder that has seen nothing yet.
    const restarted = new DropFolder(enabled(stack.config), stack.kuvert!.services.documents.intake, staffRoom, known);
    const firstPass = await restarted.scanOnce();
    assert.equal(firstPass.taken, 0, "not taken before it is seen stable");
    assert.ok(existsSync(path));
    await sleep(1100);
    const secondPass = await restarted.scanOnce();
    assert.equal(secondPass.taken, 1);
    assert.equal(secondPass.unroutable, 0);
    assert.equal(existsSync(path), false, "removed after the replayed acceptance");
    const docs = await named("Absturz.pdf");
    assert.equal(docs.length, 1, "no second document");
    assert.equal(docs[0]!.id, first.document.id);
    await delivered("Absturz.pdf");
    await restarted.stop();
  });

  it("leaves a file in place when intake fails for a transient reason, and takes it later", async () => {
    const path = join(org, "Später.pdf");
    writeFileSync(path, pdf("while the database is down"));
    const failing = {
      accept: async () => {
        throw new Error("connect ECONNREFUSED (database down)");
      },
    } as unknown as DocumentIntake;
    const broken = new DropFolder(enabled(stack.config), failing, staffRoom, known);
    await broken.scanOnce();
    await sleep(1100);
    const report = await broken.scanOnce();
    assert.deepEqual(report, { taken: 0, unroutable: 0, waiting: 5 }, "left for the next pass (with the four temporary files)");
    assert.ok(existsSync(path), "not lost, not moved aside");
    assert.equal(existsSync(unroutable("musterstadt", "Später.pdf")), false);
    const healthy = new DropFolder(enabled(stack.config), stack.kuvert!.services.documents.intake, staffRoom, known);
    await healthy.scanOnce();
    await sleep(1100);
    assert.equal((await healthy.scanOnce()).taken, 1);
    assert.equal(existsSync(path), false);
    await delivered("Später.pdf");
  });
});

// The suite above drives its own watcher; this one checks that Kuvert starts the configured one.
describe("Kuvert's own drop folder", () => {
  let stack: Stack;
  const dir = join(artifactsDir, "work", `drop-own-${randomBytes(3).toString("hex")}`);

  before(async () => {
    stack = await startStack({
      name: "dropfolder-own",
      configure: (c) => {
        c.documents = { ...(c.documents as Record<string, unknown>), dropFolder: { enabled: true, dir, stableSeconds: 1, pollSeconds: 1 } };
      },
    });
    assert.equal((await stack.api("POST", "/api/v1/organisations", { id: "musterstadt", name: "Musterstadt" })).status, 201);
    await stack.roomOf("musterstadt");
  });
  after(() => stack.stop());

  it("delivers what is dropped into an organisation's folder while Kuvert runs", async () => {
    mkdirSync(join(dir, "musterstadt"), { recursive: true });
    writeFileSync(join(dir, "musterstadt", "Bescheid.pdf"), pdf("taken by Kuvert itself"));
    await waitFor(
      "the document to be delivered",
      async () => {
        const res = await stack.api<{ documents: { filename: string; state: string; source: string }[] }>("GET", "/api/v1/organisations/musterstadt/documents");
        return res.body.documents.some((d) => d.filename === "Bescheid.pdf" && d.state === "delivered" && d.source === "folder");
      },
      30_000,
    );
    assert.equal(existsSync(join(dir, "musterstadt", "Bescheid.pdf")), false, "removed from the folder");
  });
});
