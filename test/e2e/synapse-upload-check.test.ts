// No window for clerk uploads: the real Synapse 1.67 with Kuvert's module
// (deploy/synapse/kuvert_upload_scan.py) has every upload scanned by a running Kuvert (real
// clamd) before it stores it. EICAR is refused at upload, a clean file is stored, and while
// Kuvert is down uploads are refused (fail_closed) or, when so configured, let through.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { EICAR } from "../support/clamd.ts";
import { artifactsDir, repoRoot, startStack, type Stack } from "../support/harness.ts";
import { TestUser } from "../support/matrix.ts";
import { startSynapse, synapsePython, type Synapse } from "../support/synapse.ts";
import { tempDir } from "../support/tmp.ts";

const skip = synapsePython() ? false : 'KUVERT_TEST_SYNAPSE is not set: no real Synapse here (README, "Tests against a real homeserver")';
if (skip) process.stdout.write(`synapse-upload-check: skipped (${skip})\n`);

const moduleDir = join(repoRoot, "deploy", "synapse");

describe("uploads to a real Synapse are scanned by Kuvert before Synapse stores them", { skip }, () => {
  const token = randomBytes(32).toString("hex");
  let stack: Stack;
  let synapse: Synapse;
  let clerk: TestUser;

  const kuvertModule = (failClosed: boolean) => ({
    module: "kuvert_upload_scan.KuvertUploadScan",
    config: { kuvert_url: `http://127.0.0.1:${stack.config.appservice.listener.port}`, kuvert_token: token, fail_closed: failClosed, timeout_seconds: 30 },
  });
  /** Uploads as a clerk's client does (CS API §"POST /_matrix/media/v3/upload"). */
  const upload = async (hs: Synapse, user: TestUser, bytes: Buffer, name: string) => {
    const res = await fetch(`${hs.url}/_matrix/media/v3/upload?filename=${encodeURIComponent(name)}`, {
      method: "POST",
      headers: { authorization: `Bearer ${user.client.getAccessToken()}`, "content-type": "text/plain" },
      body: new Uint8Array(bytes),
    });
    return { status: res.status, body: (await res.json()) as { content_uri?: string; errcode?: string; error?: string } };
  };
  /** What Synapse holds of the user's uploads (admin API §"List media uploaded by a user"). */
  const storedMedia = async (hs: Synapse, user: TestUser) => {
    const res = await fetch(`${hs.url}/_synapse/admin/v1/users/${encodeURIComponent(user.userId)}/media`, { headers: { authorization: `Bearer ${hs.adminToken}` } });
    return ((await res.json()) as { media: { upload_name: string }[] }).media.map((m) => m.upload_name).sort();
  };
  const auditRows = async (action: string) => (await stack.kuvert!.db.query<{ object: string; details: Record<string, unknown> }>("SELECT object, details FROM audit_log WHERE action = $1 ORDER BY seq", [action])).rows;

  before(async () => {
    stack = await startStack({ name: "synapse-upload-check", configure: (raw) => ((raw.appservice as Record<string, unknown>).uploadCheckToken = token) });
    synapse = await startSynapse({ dir: tempDir("synapse-upload-check-"), modules: [kuvertModule(true)], pythonPath: [moduleDir], logFile: join(artifactsDir, "logs", "synapse-upload-check.synapse.log") });
    clerk = await TestUser.create(synapse, "clerk");
  });
  after(async () => {
    await synapse?.stop();
    await stack?.stop();
  });

  it("refuses EICAR at upload with the error Synapse gives, stores nothing, and Kuvert records why", async () => {
    const res = await upload(synapse, clerk, EICAR, "rechnung.txt");
    assert.equal(res.status, 400);
    assert.deepEqual(res.body, { errcode: "M_UNKNOWN", error: "Bad content" });
    assert.deepEqual(await storedMedia(synapse, clerk), []);
    const refused = await auditRows("upload.refused");
    assert.equal(refused.length, 1);
    assert.equal(refused[0]!.details.verdict, "infected");
    assert.match(String(refused[0]!.details.signature), /Eicar/i);
    assert.equal(refused[0]!.details.kind, "upload");
  });

  it("stores a clean file, which can then be downloaded as it was", async () => {
    const content = Buffer.from("Antrag auf Zuschuss, Gemeinde Musterstadt\n");
    const res = await upload(synapse, clerk, content, "antrag.txt");
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const [server, mediaId] = res.body.content_uri!.slice("mxc://".length).split("/");
    const download = await fetch(`${synapse.url}/_matrix/media/v3/download/${server}/${mediaId}`);
    assert.equal(download.status, 200);
    assert.deepEqual(Buffer.from(await download.arrayBuffer()), content);
    assert.deepEqual(await storedMedia(synapse, clerk), ["antrag.txt"]);
    assert.ok(
      (await auditRows("upload.checked")).some((r) => r.object === `local/${mediaId}`),
      "the clean verdict is in Kuvert's audit log",
    );
  });

  it("answers the module only with its token: none 401, a wrong one 403 (which the module takes as a refusal)", async () => {
    const check = (headers: Record<string, string>) =>
      fetch(`http://127.0.0.1:${stack.config.appservice.listener.port}/_kuvert/v1/upload-check`, { method: "POST", headers, body: new Uint8Array(EICAR) }).then(async (r) => ({ status: r.status, body: (await r.json()) as { errcode: string } }));
    assert.deepEqual((await check({})).status, 401);
    const wrong = await check({ authorization: `Bearer ${"x".repeat(64)}` });
    assert.equal(wrong.status, 403);
    assert.equal(wrong.body.errcode, "KUVERT_FORBIDDEN");
    const right = await check({ authorization: `Bearer ${token}` });
    assert.equal(right.status, 200);
    assert.equal((right.body as unknown as { verdict: string }).verdict, "infected");
  });

  it("refuses uploads while Kuvert is down (fail_closed), and lets them through when fail_closed is false", async () => {
    await stack.stopKuvert();
    try {
      const res = await upload(synapse, clerk, Buffer.from("harmless, but nobody can check it"), "unchecked.txt");
      assert.equal(res.status, 400);
      assert.deepEqual(res.body, { errcode: "M_UNKNOWN", error: "Bad content" });
      assert.deepEqual(await storedMedia(synapse, clerk), ["antrag.txt"]);

      const open = await startSynapse({ dir: tempDir("synapse-upload-check-open-"), modules: [kuvertModule(false)], pythonPath: [moduleDir], logFile: join(artifactsDir, "logs", "synapse-upload-check-open.synapse.log") });
      try {
        const user = await TestUser.create(open, "clerk");
        const through = await upload(open, user, Buffer.from("harmless, stored unchecked"), "unchecked.txt");
        assert.equal(through.status, 200, "fail_closed: false stores the upload while Kuvert cannot answer");
        user.stop();
      } finally {
        await open.stop();
      }
    } finally {
      await stack.startKuvert();
    }
    // Back up: checked again.
    assert.equal((await upload(synapse, clerk, EICAR, "again.txt")).status, 400);
    assert.equal((await upload(synapse, clerk, Buffer.from("fine"), "fine.txt")).status, 200);
  });
});
