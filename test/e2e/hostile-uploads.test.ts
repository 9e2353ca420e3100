// Uploads cannot hurt Kuvert: malformed multipart, bodies shorter than announced, uploads the
// client breaks off, NUL characters and broken percent-escapes, thrown at every endpoint that
// takes input. Kuvert runs as a child process (so "still alive" is observable), with a real
// clamd, PostgreSQL and SMTP server. The invariant after every attack: a clear 4xx with a
// KUVERT_ code (or, for a broken-off upload, no answer at all), the process alive, and nothing
// left behind: no file in staging, no descriptor open on one, no row.
import assert from "node:assert/strict";
import { readdirSync, readlinkSync } from "node:fs";
import { request } from "node:http";
import { after, before, describe, it } from "node:test";
import fc from "fast-check";
import { openDatabase, type Database } from "../../appservice/db/database.ts";
import { circularStagingDir } from "../../appservice/circulars/service.ts";
import { createToken } from "../../appservice/tokens/tokens.ts";
import { startStack, waitFor, type Stack } from "../support/harness.ts";

const PDF = Buffer.from("%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Count 0/Kids[]>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n", "latin1");

interface Sent {
  /** The status, or null when the client broke off before an answer. */
  status: number | null;
  body: { errcode?: string; error?: string } | null;
}

/**
 * One HTTP request with full control over the body: `chunks` are written as they are; with
 * `abort` the connection is destroyed after them (without ending the body), as a client that
 * goes away mid-upload.
 */
function send(url: string, opts: { method: string; path: string; headers: Record<string, string>; chunks: Buffer[]; abort?: boolean }): Promise<Sent> {
  return new Promise((resolve, reject) => {
    const target = new URL(opts.path, url);
    const req = request({ host: target.hostname, port: target.port, method: opts.method, path: opts.path, headers: opts.headers }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (text += c));
      res.on("end", () => {
        let body: Sent["body"] = null;
        try {
          body = JSON.parse(text) as Sent["body"];
        } catch {
          body = { error: text };
        }
        resolve({ status: res.statusCode ?? 0, body });
      });
      res.on("error", () => resolve({ status: res.statusCode ?? 0, body: null }));
    });
    req.on("error", (err) => (opts.abort ? resolve({ status: null, body: null }) : reject(err)));
    for (const c of opts.chunks) req.write(c);
    if (opts.abort) {
      // Long enough for the server to have opened its staging file for what arrived.
      setTimeout(() => {
        req.destroy();
        resolve({ status: null, body: null });
      }, 150);
    } else req.end();
  });
}

const BOUNDARY = "----kuvert-test-boundary";
const multipartHeaders = (token: string) => ({ authorization: `Bearer ${token}`, "content-type": `multipart/form-data; boundary=${BOUNDARY}`, "transfer-encoding": "chunked" });
/** A file part's head; the name travels as RFC 5987 `filename*` so any character can be in it. */
const filePart = (field: string, name: string, type = "application/pdf") => Buffer.from(`--${BOUNDARY}\r\nContent-Disposition: form-data; name="${field}"; filename*=UTF-8''${encodeURIComponent(name)}\r\nContent-Type: ${type}\r\n\r\n`);
const textPart = (field: string, value: string) => Buffer.from(`--${BOUNDARY}\r\nContent-Disposition: form-data; name="${field}"\r\n\r\n${value}\r\n`);
const closing = Buffer.from(`\r\n--${BOUNDARY}--\r\n`);

describe("uploads cannot hurt Kuvert", () => {
  let stack: Stack;
  let db: Database;
  let dropToken: string;
  let staffToken: string;
  let stagingDirs: string[];

  before(async () => {
    stack = await startStack({
      name: "hostile-uploads",
      childProcess: true,
      // Hundreds of attacks from one address in a minute (broken-off ones count as failed): rate limits are another suite's subject.
      configure: (c) => void Object.assign(c.publicApi as Record<string, unknown>, { rateLimitPerMinute: 100_000, failedAuthPerMinute: 100_000 }),
    });
    db = await openDatabase({ url: stack.config.database.url, embeddedDir: "", poolSize: 2 });
    const res = await stack.api("POST", "/api/v1/organisations", { id: "musterstadt", name: "Gemeinde Musterstadt", tags: ["schools"], clerks: [{ email: "anna@musterstadt.example" }] });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    await stack.roomOf("musterstadt");
    // As in the report: a drop token limited to one organisation is enough to try.
    dropToken = await createToken(db, "levy-system", ["drop"], "test", ["musterstadt"]);
    staffToken = await createToken(db, "staff-system", ["staff"], "test");
    stagingDirs = [stack.config.documents.stagingDir, circularStagingDir(stack.config)];
  });
  after(async () => {
    await db?.close();
    await stack?.stop();
  });

  const counts = async () => {
    const { rows } = await db.query<{ documents: string; circulars: string }>("SELECT (SELECT count(*) FROM documents) AS documents, (SELECT count(*) FROM circulars) AS circulars");
    return rows[0]!;
  };
  const stagedFiles = () => stagingDirs.flatMap((dir) => readdirSyncSafe(dir));
  /** Descriptors the Kuvert process holds open on anything in staging. */
  const openStagingDescriptors = () => {
    const pid = stack.child!.pid!;
    return readdirSync(`/proc/${pid}/fd`).flatMap((fd) => {
      try {
        const target = readlinkSync(`/proc/${pid}/fd/${fd}`);
        return stagingDirs.some((dir) => target.startsWith(dir)) ? [target] : [];
      } catch {
        return [];
      }
    });
  };
  const alive = async () => {
    assert.equal(stack.child?.exitCode, null, "the Kuvert process is still running");
    const res = await fetch(`${stack.publicUrl}/healthz`);
    assert.equal(res.status, 200);
  };
  /** The invariant after any attack: alive, nothing staged, no descriptor, no new row. */
  const nothingLeft = async (rowsBefore: { documents: string; circulars: string }) => {
    await alive();
    await waitFor("staging to be empty and its descriptors closed", () => stagedFiles().length === 0 && openStagingDescriptors().length === 0, 5000, 50).catch(() => {
      assert.deepEqual({ staged: stagedFiles(), open: openStagingDescriptors() }, { staged: [], open: [] }, "nothing left in staging");
    });
    assert.deepEqual(await counts(), rowsBefore, "no row was written");
  };
  const clear4xx = (res: Sent, what: string) => {
    assert.ok(res.status !== null && res.status >= 400 && res.status < 500, `${what}: expected a 4xx, got ${res.status} ${JSON.stringify(res.body)}`);
    assert.match(res.body?.errcode ?? "", /^KUVERT_[A-Z_]+$/, `${what}: a stable code`);
    assert.ok((res.body?.error ?? "").length > 10, `${what}: a sentence`);
  };

  it("a multipart drop whose file part has no closing boundary gets a 400 and Kuvert stays up", async () => {
    const before = await counts();
    const res = await send(stack.publicUrl, {
      method: "POST",
      path: "/api/v1/organisations/musterstadt/documents",
      headers: multipartHeaders(dropToken),
      chunks: [textPart("kind", "Bescheid"), filePart("file", "Bescheid.pdf"), PDF],
    });
    clear4xx(res, "no closing boundary");
    await nothingLeft(before);
    // The same body at the circulars API: a clean 400 there too.
    const circular = await send(stack.publicUrl, {
      method: "POST",
      path: "/api/v1/circulars",
      headers: multipartHeaders(staffToken),
      chunks: [textPart("text", "Rundschreiben"), textPart("targets", JSON.stringify({ tag: "schools" })), filePart("attachment", "Anlage.pdf"), PDF],
    });
    clear4xx(circular, "no closing boundary (circulars)");
    await nothingLeft(before);
  });

  it("ten multipart uploads broken off mid-file leave no file, no open descriptor and no row", async () => {
    const before = await counts();
    for (let i = 0; i < 10; i++) {
      const res = await send(stack.publicUrl, {
        method: "POST",
        path: i % 2 === 0 ? "/api/v1/organisations/musterstadt/documents" : "/api/v1/circulars",
        headers: multipartHeaders(i % 2 === 0 ? dropToken : staffToken),
        chunks: i % 2 === 0 ? [filePart("file", `Teil ${i}.pdf`), PDF, Buffer.alloc(64 * 1024, 0x20)] : [textPart("text", "x"), textPart("targets", '{"all":true}'), filePart("attachment", `Teil ${i}.pdf`), PDF],
        abort: true,
      });
      assert.equal(res.status, null);
    }
    await nothingLeft(before);
  });

  it("NUL characters in ids, search terms, names and /verify fields, and broken percent-escapes, give a 400", async () => {
    const before = await counts();
    const get = (path: string, token = stack.adminToken) => send(stack.publicUrl, { method: "GET", path, headers: { authorization: `Bearer ${token}` }, chunks: [] });
    const postJson = (path: string, body: string, headers: Record<string, string> = { authorization: `Bearer ${stack.adminToken}` }) => send(stack.publicUrl, { method: "POST", path, headers: { "content-type": "application/json", ...headers }, chunks: [Buffer.from(body)] });
    const attacks: [string, Promise<Sent>][] = [
      ["document id with NUL", get("/api/v1/documents/doc_%00abc")],
      ["batch id with NUL", get("/api/v1/batches/b%00")],
      ["organisation with NUL", get("/api/v1/organisations/muster%00stadt")],
      ["account with NUL", get("/api/v1/accounts/%40a%00%3Ab")],
      ["search with NUL", get("/api/v1/console/organisations?search=a%00b")],
      ["audit actor with NUL", get("/api/v1/audit?actor=%00")],
      ["circular paging with NUL", get("/api/v1/circulars?before=circ_%00", staffToken)],
      ["document id with a broken escape", get("/api/v1/documents/%E0%A4%A")],
      ["organisation with a broken escape", get("/api/v1/organisations/%ZZ")],
      ["a lone % in the path", get("/api/v1/documents/%")],
      ["filename with NUL", send(stack.publicUrl, { method: "POST", path: "/api/v1/organisations/musterstadt/documents?filename=a%00.pdf", headers: { authorization: `Bearer ${dropToken}`, "content-type": "application/pdf" }, chunks: [PDF] })],
      ["organisation name with NUL (JSON)", postJson("/api/v1/organisations", JSON.stringify({ id: "nul-org", name: "Gemeinde\u0000X" }))],
      ["circular text with NUL (JSON)", postJson("/api/v1/circulars", JSON.stringify({ text: "a\u0000b", targets: { all: true } }), { authorization: `Bearer ${staffToken}` })],
      ["/verify room id with NUL", postJson("/verify/user_in_room", JSON.stringify({ token: "t", room_id: "!a\u0000:x", matrix_server_name: "x" }), {})],
      ["/verify token with NUL", postJson("/verify/user", JSON.stringify({ token: "\u0000", matrix_server_name: "x" }), {})],
      ["guest session token with NUL", postJson("/api/v1/guest/session", JSON.stringify({ token: "a\u0000" }), {})],
      ["console sign-in with NUL", postJson("/api/v1/session", JSON.stringify({ access_token: "\u0000", matrix_server_name: "x" }), { "x-kuvert-console": "1" })],
      ["kind with NUL (multipart)", send(stack.publicUrl, { method: "POST", path: "/api/v1/organisations/musterstadt/documents", headers: multipartHeaders(dropToken), chunks: [textPart("kind", "a\u0000b"), filePart("file", "a.pdf"), PDF, closing] })],
      ["circular text with NUL (multipart)", send(stack.publicUrl, { method: "POST", path: "/api/v1/circulars", headers: multipartHeaders(staffToken), chunks: [textPart("text", "a\u0000b"), textPart("targets", '{"all":true}'), filePart("attachment", "a.pdf"), PDF, closing] })],
    ];
    for (const [what, pending] of attacks) clear4xx(await pending, what);
    await nothingLeft(before);
  });

  it("an event with a NUL character from the homeserver is stored, and the transactions after it go through", async () => {
    const roomId = await stack.roomOf("musterstadt");
    const event = (n: number, body: string) => ({ type: "m.room.message", event_id: `$nul-${n}`, room_id: roomId, sender: "@mallory:elsewhere.example", origin_server_ts: Date.now(), content: { msgtype: "m.text", body } });
    const first = await stack.pushTransaction("nul-1", [event(1, "Hallo\u0000Welt")]);
    assert.equal(first.status, 200, JSON.stringify(first.body));
    const second = await stack.pushTransaction("nul-2", [event(2, "danach")]);
    assert.equal(second.status, 200, JSON.stringify(second.body));
    await alive();
  });

  it("property: malformed multipart, truncated bodies and broken-off uploads get a clear 4xx (or no answer) and leave nothing behind", async () => {
    const before = await counts();
    const endpoint = fc.constantFrom(
      { path: "/api/v1/organisations/musterstadt/documents", token: () => dropToken, field: "file", fields: [] as [string, string][] },
      {
        path: "/api/v1/circulars",
        token: () => staffToken,
        field: "attachment",
        fields: [
          ["text", "Rundschreiben"],
          ["targets", '{"tag":"schools"}'],
        ] as [string, string][],
      },
    );
    const content = fc.oneof(
      fc.constant(PDF),
      fc.uint8Array({ minLength: 0, maxLength: 4096 }).map((a) => Buffer.from(a)),
    );
    const attack = fc.oneof(
      // The body ends somewhere inside the multipart structure: no closing boundary.
      fc.record({ kind: fc.constant("truncated" as const), endpoint, content, cut: fc.nat() }),
      // The client goes away somewhere inside the upload.
      fc.record({ kind: fc.constant("aborted" as const), endpoint, content, cut: fc.nat() }),
      // Garbage where multipart structure should be.
      fc.record({ kind: fc.constant("garbage" as const), endpoint, content, garbage: fc.uint8Array({ minLength: 0, maxLength: 512 }).map((a) => Buffer.from(a)) }),
      // A raw upload that announces more bytes than it sends, then breaks off.
      fc.record({ kind: fc.constant("short-raw" as const), content: fc.constant(PDF), missing: fc.integer({ min: 1, max: 100_000 }) }),
    );
    await fc.assert(
      fc.asyncProperty(attack, async (a) => {
        let res: Sent;
        if (a.kind === "short-raw") {
          res = await send(stack.publicUrl, {
            method: "POST",
            path: "/api/v1/organisations/musterstadt/documents?filename=Bescheid.pdf",
            headers: { authorization: `Bearer ${dropToken}`, "content-type": "application/pdf", "content-length": String(a.content.length + a.missing) },
            chunks: [a.content],
            abort: true,
          });
        } else if (a.kind === "garbage") {
          res = await send(stack.publicUrl, { method: "POST", path: a.endpoint.path, headers: multipartHeaders(a.endpoint.token()), chunks: [a.garbage] });
        } else {
          const full = Buffer.concat([...a.endpoint.fields.map(([k, v]) => textPart(k, v)), filePart(a.endpoint.field, "Bescheid.pdf"), a.content, closing]);
          // Cut before the closing boundary's last dashes, so the body is never complete.
          const body = full.subarray(0, a.cut % (full.length - 4));
          res = await send(stack.publicUrl, { method: "POST", path: a.endpoint.path, headers: multipartHeaders(a.endpoint.token()), chunks: [body], abort: a.kind === "aborted" });
        }
        if (res.status !== null) clear4xx(res, a.kind);
        await nothingLeft(before);
      }),
      { numRuns: 60, seed: 1312, endOnFailure: true },
    );
  });

  it("property: odd characters in names are refused alike by the raw and the multipart API, and nothing is kept", async () => {
    const before = await counts();
    const odd = fc.constantFrom("\u0000", "\u0007", "\u200B", "\u200D", "\u2060", "\uFEFF", "\u00AD", "\u202E", "\u2066", "\u2028", "\uE000", "/", "\\", "\u3164");
    const base = fc.stringMatching(/^[A-Za-z0-9_-]{1,20}$/);
    const name = fc.oneof(
      fc.tuple(base, odd, fc.nat()).map(([b, c, at]) => {
        const i = at % (b.length + 1);
        return `${b.slice(0, i)}${c}${b.slice(i)}.pdf`;
      }),
      fc.constantFrom("CON", "aux.pdf", "Nul.pdf", "com1.pdf", "LPT9.txt", "rechnung.pdf.", "rechnung.pdf ", "../../etc/x.pdf", "..\\x.pdf", "CON .pdf"),
    );
    await fc.assert(
      fc.asyncProperty(name, fc.boolean(), async (filename, multipart) => {
        const res = multipart
          ? await send(stack.publicUrl, { method: "POST", path: "/api/v1/organisations/musterstadt/documents", headers: multipartHeaders(dropToken), chunks: [filePart("file", filename), PDF, closing] })
          : await send(stack.publicUrl, {
              method: "POST",
              path: `/api/v1/organisations/musterstadt/documents?filename=${encodeURIComponent(filename)}`,
              headers: { authorization: `Bearer ${dropToken}`, "content-type": "application/pdf" },
              chunks: [PDF],
            });
        clear4xx(res, `${JSON.stringify(filename)} (${multipart ? "multipart" : "raw"})`);
        assert.ok(res.body?.errcode === "KUVERT_INVALID_FILENAME" || (filename.includes("\u0000") && res.body?.errcode === "KUVERT_INVALID_INPUT"), `${JSON.stringify(filename)}: ${res.body?.errcode}`);
        await nothingLeft(before);
      }),
      { numRuns: 40, seed: 4711, endOnFailure: true },
    );
  });
});

function readdirSyncSafe(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}
