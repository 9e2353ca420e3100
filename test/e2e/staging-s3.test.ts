// Staging on S3-compatible object storage, end to end: Kuvert (a child process, so it can be
// killed) stages in a bucket of a real S3-compatible store (Swift with s3api, test/support/s3.ts),
// scans with a real clamd and delivers. Documents, batches and a circular's attachment are delivered from the bucket,
// EICAR is refused, an oversized upload leaves no object and no unfinished upload, a document
// waiting in the bucket survives a restart, and retention sweeps what a crash left there.
import assert from "node:assert/strict";
import { readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { KuvertConfig } from "../../appservice/config/schema.ts";
import { openDatabase } from "../../appservice/db/database.ts";
import { runRetention } from "../../appservice/retention/retention.ts";
import { EICAR } from "../support/clamd.ts";
import { pdf, zip } from "../support/files.ts";
import { startStack, waitFor, type Stack } from "../support/harness.ts";
import { s3Missing, startS3, type S3Store } from "../support/s3.ts";

interface DocumentStatus {
  id: string;
  state: string;
  reason: string | null;
  signature: string | null;
  eventId: string | null;
  errcode?: string;
}

const PREFIX = "kuvert-suite/";
const DOCUMENTS = `${PREFIX}documents/`;
const MAX_BYTES = 16 * 1024 * 1024;

const missing = s3Missing();
if (missing) {
  describe("staging on S3-compatible object storage", { skip: missing }, () => undefined);
} else {
  describe("staging on S3-compatible object storage", () => {
    let s3: S3Store;
    let stack: Stack;
    let roomA: string;
    let roomB: string;

    const drop = async (org: string, body: Buffer, filename: string) => {
      const res = await stack.api<DocumentStatus>("POST", `/api/v1/organisations/${org}/documents?${new URLSearchParams({ filename })}`, body, { contentType: "application/octet-stream" });
      return res;
    };
    const status = async (id: string) => (await stack.api<DocumentStatus>("GET", `/api/v1/documents/${id}`)).body;
    const until = async (id: string, states: string[], timeoutMs = 60_000) => {
      let last: DocumentStatus | undefined;
      await waitFor(
        () => `document ${id} to reach ${states.join(" or ")} (last: ${last?.state})`,
        async () => {
          last = await status(id);
          return states.includes(last.state);
        },
        timeoutMs,
        200,
      );
      return last!;
    };
    const fileIn = async (roomId: string, eventId: string) => {
      const event = (await stack.timeline(roomId)).find((e) => e.event_id === eventId);
      assert.ok(event, `the file event ${eventId} is in the room`);
      return event.content as { filename: string; url: string; info: { size: number } };
    };
    /** Documents in the local staging folder: with S3 staging there are none (only local copies, removed after use). */
    const localDocuments = () => readdirSync(stack.config.documents.stagingDir).filter((name) => !name.startsWith("."));
    const localCopies = () => ["documents", "circulars"].flatMap((area) => readdirSafe(join(stack.config.documents.stagingDir, `.s3-cache-${area}`)));

    before(async () => {
      s3 = await startS3();
      // The keys come from the environment, as an operator gives them; the rest from the file.
      process.env.KUVERT_S3_ACCESS_KEY_ID = s3.accessKeyId;
      process.env.KUVERT_S3_SECRET_ACCESS_KEY = s3.secretAccessKey;
      stack = await startStack({
        name: "staging-s3",
        childProcess: true,
        configure: (c) => {
          const documents = c.documents as Record<string, unknown>;
          documents.maxBytes = MAX_BYTES;
          documents.stagingS3 = { endpoint: s3.endpoint, bucket: s3.bucket, region: s3.region, prefix: PREFIX, forcePathStyle: true };
        },
      });
      for (const id of ["org-a", "org-b"]) {
        const res = await stack.api("POST", "/api/v1/organisations", { id, name: `Organisation ${id}`, clerks: [{ email: `clerk@${id}.example` }] });
        assert.equal(res.status, 201);
      }
      roomA = await stack.roomOf("org-a");
      roomB = await stack.roomOf("org-b");
    });
    after(async () => {
      delete process.env.KUVERT_S3_ACCESS_KEY_ID;
      delete process.env.KUVERT_S3_SECRET_ACCESS_KEY;
      await stack?.stop();
      await s3?.stop();
    });

    it("delivers a document (large enough for a multipart upload) from the bucket, and deletes it there", async () => {
      const content = pdf(`Bescheid ${"x".repeat(12 * 1024 * 1024)}`);
      const res = await drop("org-a", content, "bescheid.pdf");
      assert.equal(res.status, 202, JSON.stringify(res.body));
      const delivered = await until(res.body.id, ["delivered"]);
      const file = await fileIn(roomA, delivered.eventId!);
      assert.equal(file.filename, "bescheid.pdf");
      assert.equal(file.info.size, content.length);
      assert.deepEqual(await stack.download(file.url), content, "the delivered file is the staged one, byte for byte");
      assert.deepEqual(await s3.keys(DOCUMENTS), [], "the staged object is deleted after delivery");
      assert.deepEqual(localDocuments(), [], "nothing was staged in the local folder");
      assert.deepEqual(localCopies(), [], "the local copies for the scan and the upload are removed after use");
    });

    it("keeps a document in the bucket while the scanner is down, across a restart, and delivers it after", async () => {
      await stack.clamd.pause();
      try {
        const res = await drop("org-b", pdf("waits in the bucket"), "wartet.pdf");
        assert.equal(res.status, 202, JSON.stringify(res.body));
        await until(res.body.id, ["held"]);
        assert.deepEqual(await s3.keys(DOCUMENTS), [`${DOCUMENTS}${res.body.id}`], "accepted means stored in the bucket");
        assert.deepEqual(localDocuments(), []);
        await stack.killKuvert();
        await stack.startKuvert(true);
        await stack.clamd.resume();
        const delivered = await until(res.body.id, ["delivered"]);
        const file = await fileIn(roomB, delivered.eventId!);
        assert.deepEqual(await stack.download(file.url), pdf("waits in the bucket"));
        // The staged object goes right after the delivery is recorded, not in the same step.
        let left: string[] = [];
        await waitFor(
          () => `the staged object to be deleted (${left.join(", ")})`,
          async () => (left = await s3.keys(DOCUMENTS)).length === 0,
          10_000,
          100,
        );
      } finally {
        await stack.clamd.resume().catch(() => undefined);
      }
    });

    it("refuses EICAR and deletes it from the bucket", async () => {
      const res = await drop("org-a", EICAR, "eicar.txt");
      assert.equal(res.status, 202, JSON.stringify(res.body));
      const rejected = await until(res.body.id, ["rejected"]);
      assert.match(rejected.signature ?? "", /Eicar/i);
      assert.equal(rejected.eventId, null);
      assert.deepEqual(await s3.keys(DOCUMENTS), [], "the infected object is deleted, not kept");
      assert.deepEqual(localCopies(), []);
    });

    it("refuses an oversized upload while it streams, and an empty one: no object, no unfinished multipart upload", async () => {
      const res = await drop("org-a", pdf("y".repeat(MAX_BYTES + 1024)), "zu-gross.pdf");
      assert.equal(res.status, 413, JSON.stringify(res.body));
      assert.equal(res.body.errcode, "KUVERT_TOO_LARGE");
      assert.deepEqual(await s3.keys(DOCUMENTS), []);
      assert.deepEqual(await s3.unfinishedUploads(PREFIX), [], "the multipart upload was aborted");
      const empty = await drop("org-a", Buffer.alloc(0), "leer.pdf");
      assert.equal(empty.status, 400, JSON.stringify(empty.body));
      assert.equal(empty.body.errcode, "KUVERT_EMPTY_FILE");
      assert.deepEqual(await s3.keys(DOCUMENTS), [], "an empty upload leaves no object either");
    });

    it("delivers a batch staged in the bucket, entry by entry, and deletes the batch after", async () => {
      const body = await zip({
        "manifest.csv": "file,organisation,kind,reference\na.pdf,org-a,Bescheid,S3-1\nb.pdf,org-b,Bescheid,S3-2\nc.pdf,org-b,Bescheid,S3-3\n",
        "a.pdf": pdf("batch a"),
        "b.pdf": pdf("batch b"),
        "c.pdf": pdf("batch c"),
      });
      const res = await stack.api<{ id: string }>("POST", "/api/v1/batches", body, { contentType: "application/zip" });
      assert.equal(res.status, 202, JSON.stringify(res.body));
      let s: { finished: boolean; counts: Record<string, number> } | undefined;
      await waitFor("the batch to finish", async () => (s = (await stack.api<{ finished: boolean; counts: Record<string, number> }>("GET", `/api/v1/batches/${res.body.id}`)).body).finished, 60_000, 200);
      assert.deepEqual(s!.counts, { delivered: 3 });
      const filenames = async (roomId: string) => (await stack.timeline(roomId)).filter((e) => e.content.msgtype === "m.file").map((e) => String(e.content.filename));
      assert.ok((await filenames(roomA)).includes("a.pdf"));
      assert.deepEqual((await filenames(roomB)).filter((f) => f !== "wartet.pdf").sort(), ["b.pdf", "c.pdf"]);
      assert.deepEqual(await s3.keys(PREFIX), [], "neither the batch nor its documents are left in the bucket");
      assert.deepEqual(localCopies(), []);
    });

    it("stages a circular's attachment under the circulars' prefix, delivers it to every room, and deletes it", async () => {
      const form = new FormData();
      form.append("text", "Rundschreiben mit Anlage aus dem Bucket");
      form.append("targets", JSON.stringify({ all: true }));
      form.append("attachment", new Blob([new Uint8Array(pdf("Anlage im Bucket"))], { type: "application/pdf" }), "Anlage.pdf");
      const res = await fetch(`${stack.publicUrl}/api/v1/circulars`, { method: "POST", headers: { authorization: `Bearer ${stack.adminToken}` }, body: form });
      const created = (await res.json()) as { id: string };
      assert.equal(res.status, 201, JSON.stringify(created));
      let circular: { state: string; attachments: { verdict: string | null; mxcUri: string | null }[] } | undefined;
      await waitFor(
        () => `the circular to be sent (last: ${circular?.state})`,
        async () => (circular = (await stack.api<NonNullable<typeof circular>>("GET", `/api/v1/circulars/${created.id}`)).body).state === "sent",
        60_000,
        200,
      );
      assert.equal(circular!.attachments[0]!.verdict, "clean");
      assert.deepEqual(await stack.download(circular!.attachments[0]!.mxcUri!), pdf("Anlage im Bucket"), "read back from the bucket as it was sent");
      for (const roomId of [roomA, roomB]) {
        assert.ok(
          (await stack.timeline(roomId)).some((e) => e.content.msgtype === "m.file" && e.content.url === circular!.attachments[0]!.mxcUri),
          "each room has the attachment",
        );
      }
      assert.deepEqual(await s3.keys(`${PREFIX}circulars/`), [], "the staged attachment is deleted once uploaded");
      assert.deepEqual(localCopies(), []);
    });

    it("sweeps what a crash left in the bucket with retention, once it is older than the limit", async () => {
      await s3.put(`${DOCUMENTS}doc_left-by-a-crash`, pdf("orphan"));
      // And a local copy a process left when it died mid-scan.
      writeFileSync(join(stack.config.documents.stagingDir, ".s3-cache-documents", "doc_left-by-a-crash.0123456789ab"), pdf("orphan"));
      const config: KuvertConfig = {
        ...stack.config,
        documents: { ...stack.config.documents, stagingS3: { ...stack.config.documents.stagingS3!, accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey } },
      };
      const db = await openDatabase({ url: stack.config.database.url, embeddedDir: join(stack.workDir, "db"), poolSize: 1 });
      try {
        const early = await runRetention(db, config);
        assert.equal(early?.stagingFiles, 0, "a fresh object is left alone (it may belong to an upload being answered)");
        assert.deepEqual(await s3.keys(DOCUMENTS), [`${DOCUMENTS}doc_left-by-a-crash`]);
        assert.equal(localCopies().length, 1);
        const later = await runRetention(db, config, new Date(Date.now() + (stack.config.retention.stagingOrphanHours + 1) * 60 * 60 * 1000));
        assert.equal(later?.stagingFiles, 2, "the object and the local copy");
        assert.deepEqual(await s3.keys(DOCUMENTS), []);
        assert.deepEqual(localCopies(), []);
      } finally {
        await db.close();
      }
    });
  });
}

function readdirSafe(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}
