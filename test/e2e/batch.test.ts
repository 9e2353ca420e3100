// Bulk batches: a ZIP with a manifest, a report per document — and Kuvert killed at random
// points while it works through 200 of them, restarted each time: every document is delivered
// once and notified once.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { execFile } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { repoRoot } from "../support/harness.ts";
import { startStack, waitFor, type RoomEvent, type Stack } from "../support/harness.ts";
import { tempDir } from "../support/tmp.ts";
import { pdf, zip } from "../support/files.ts";

interface BatchStatus {
  state: string;
  finished: boolean;
  total: number;
  counts: Record<string, number>;
  entries: { line: number; file: string; organisation: string; documentId: string | null; state: string; errcode: string | null; reason: string | null }[];
}

const ORGS = 20;
const DOCS = 200;

describe("bulk batches", () => {
  let stack: Stack;
  const rooms = new Map<string, string>();

  const submit = (body: Buffer, headers: Record<string, string> = {}) => stack.api<{ id: string; replayed: boolean; errcode?: string; error?: string }>("POST", "/api/v1/batches", body, { contentType: "application/zip", headers });
  const status = async (id: string) => (await stack.api<BatchStatus>("GET", `/api/v1/batches/${id}`)).body;

  before(async () => {
    stack = await startStack({ name: "batch", childProcess: true, configure: (c) => ((c.mail as Record<string, unknown>).combineWindowSeconds = 2) });
    for (let i = 0; i < ORGS; i++) {
      const id = `org-${i}`;
      const res = await stack.api("POST", "/api/v1/organisations", { id, name: `Organisation ${i}`, clerks: [{ email: `clerk@org-${i}.example` }] });
      assert.equal(res.status, 201);
    }
    for (let i = 0; i < ORGS; i++) rooms.set(`org-${i}`, await stack.roomOf(`org-${i}`));
  });
  after(() => stack.stop());

  it("reports each entry, refusing bad ones without holding up the rest", async () => {
    const body = await zip({
      "manifest.csv": "file,organisation,kind,reference\ngood.pdf,org-0,Bescheid,R-1\nmissing.pdf,org-0,,\nother.pdf,nobody,,\ngood.pdf,org-1,,\nempty.pdf,org-1,,\n",
      "good.pdf": pdf("good"),
      "other.pdf": pdf("other"),
      "empty.pdf": "",
    });
    const res = await submit(body);
    assert.equal(res.status, 202, JSON.stringify(res.body));
    let s!: BatchStatus;
    await waitFor("the batch to finish", async () => (s = await status(res.body.id)).finished, 30_000);
    assert.deepEqual(
      s.entries.map((e) => [e.line, e.state, e.errcode]),
      [
        [2, "delivered", null],
        [3, "error", "KUVERT_INVALID_INPUT"],
        [4, "error", "KUVERT_NOT_FOUND"],
        [5, "error", "KUVERT_INVALID_INPUT"],
        [6, "error", "KUVERT_EMPTY_FILE"],
      ],
    );
    assert.match(s.entries[1]!.reason!, /not in the ZIP/);
    assert.match(s.entries[3]!.reason!, /listed again \(first on line 2\)/);
  });

  it("sends a folder from the command line and follows it to the end", async () => {
    const dir = tempDir("kuvert-batch-");
    mkdirSync(join(dir, "letters"));
    writeFileSync(join(dir, "manifest.json"), JSON.stringify({ documents: [0, 1, 2].map((n) => ({ file: `letters/cli-${n}.pdf`, organisation: `org-${n}` })) }));
    for (const n of [0, 1, 2]) writeFileSync(join(dir, "letters", `cli-${n}.pdf`), pdf(`cli ${n}`));
    const run = await promisify(execFile)(process.execPath, [join(repoRoot, "bin", "kuvert.js"), "batch", "submit", dir, "--url", stack.publicUrl, "--token", stack.adminToken], { cwd: dir });
    assert.match(run.stdout, /Batch batch_\S+ accepted\./);
    assert.match(run.stdout, /^3 delivered\.$/m);
    assert.match(run.stderr, /Delivering \[.*\] 3\/3 documents/);
  });

  it("refuses a ZIP without a manifest, and what is not a ZIP", async () => {
    const noManifest = await submit(await zip({ "a.pdf": pdf("a") }));
    assert.equal(noManifest.status, 400);
    assert.match(noManifest.body.error!, /no manifest/);
    const notZip = await submit(pdf("not a zip"));
    assert.equal(notZip.status, 400);
    assert.match(notZip.body.error!, /not a readable ZIP/);
  });

  it(`delivers ${DOCS} documents exactly once and notifies once, while Kuvert is killed again and again`, async () => {
    const files: Record<string, Buffer | string> = {};
    const lines = ["file,organisation,kind,reference"];
    for (let n = 0; n < DOCS; n++) {
      files[`docs/d${n}.pdf`] = pdf(`document ${n} ${"x".repeat(n * 37)}`);
      lines.push(`docs/d${n}.pdf,org-${n % ORGS},Bescheid,REF-${n}`);
    }
    files["manifest.csv"] = lines.join("\n");
    const mailsBefore = stack.smtp.messages.length;
    const res = await submit(await zip(files), { "idempotency-key": "crash-batch" });
    assert.equal(res.status, 202);

    let kills = 0;
    for (let round = 0; round < 5; round++) {
      await new Promise((r) => setTimeout(r, 300 + Math.floor(Math.random() * 1500)));
      if ((await status(res.body.id)).finished) break;
      await stack.killKuvert();
      kills++;
      await stack.startKuvert(true);
    }
    assert.ok(kills >= 1, "Kuvert was killed at least once while the batch ran");
    const again = await submit(await zip(files), { "idempotency-key": "crash-batch" });
    assert.equal(again.body.id, res.body.id, "the retried upload is the same batch");

    let s!: BatchStatus;
    await waitFor("the batch to finish", async () => (s = await status(res.body.id)).finished, 180_000, 500);
    assert.deepEqual(s.counts, { delivered: DOCS });

    const delivered = new Map<string, number>();
    const timelines = new Map<string, RoomEvent[]>();
    for (const roomId of rooms.values()) timelines.set(roomId, await stack.timeline(roomId));
    for (const timeline of timelines.values()) {
      for (const e of timeline) {
        if (e.type === "m.room.message" && e.content.msgtype === "m.file" && /^d\d+\.pdf$/.test(String(e.content.filename))) {
          delivered.set(String(e.content.filename), (delivered.get(String(e.content.filename)) ?? 0) + 1);
        }
      }
    }
    assert.equal(delivered.size, DOCS, "every document reached a room");
    assert.deepEqual(
      [...delivered.values()].filter((n) => n !== 1),
      [],
      "no document was posted twice",
    );
    for (let n = 0; n < DOCS; n++) {
      const room = rooms.get(`org-${n % ORGS}`)!;
      assert.ok(
        timelines.get(room)!.some((e) => e.content.filename === `d${n}.pdf`),
        `d${n}.pdf is in the room of org-${n % ORGS}`,
      );
    }

    // Each reference is announced to its organisation's clerk exactly once (an e-mail resent after a
    // crash carries the same Message-ID and counts once, as the outbox documents).
    const seen = new Map<string, string>();
    await waitFor(
      "every notification",
      () => {
        const mails = new Map(stack.smtp.messages.slice(mailsBefore).map((m) => [m.messageId, m]));
        seen.clear();
        for (const m of mails.values()) {
          const to = m.to && "text" in m.to ? m.to.text : "";
          for (const ref of (m.text ?? "").match(/REF-\d+\b/g) ?? []) {
            if (seen.has(ref)) throw new Error(`${ref} announced twice`);
            seen.set(ref, to);
          }
        }
        return seen.size === DOCS;
      },
      120_000,
      500,
    );
    for (let n = 0; n < DOCS; n++) assert.equal(seen.get(`REF-${n}`), `clerk@org-${n % ORGS}.example`);
  });
});
