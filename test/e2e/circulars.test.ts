// Circulars end to end: the API and the staff-room command, a real clamd, a real SMTP server,
// the test homeserver (with rate limits and held requests), and clerks and staff in
// matrix-js-sdk clients. A circular reaches exactly its rooms, once; an attachment is scanned
// and uploaded once; one that is not clean stops everything before any room gets it.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { stringify } from "yaml";
import { after, before, describe, it } from "node:test";
import { verifyAuditLog } from "../../appservice/audit/audit.ts";
import { circularStagingDir } from "../../appservice/circulars/service.ts";
import { smallZip } from "../../appservice/scanning/zipwriter.ts";
import { createToken } from "../../appservice/tokens/tokens.ts";
import type { RoomEvent } from "@kuvert/test-homeserver";
import { EICAR } from "../support/clamd.ts";
import { repoRoot, startStack, waitFor, type Stack } from "../support/harness.ts";
import type { TestUser } from "../support/matrix.ts";
import { tempDir } from "../support/tmp.ts";
import { pdf } from "../support/files.ts";

interface Summary {
  pending: number;
  delivered: number;
  failed: number;
}
interface Circular {
  id: string;
  state: string;
  reason: string | null;
  summary: Summary;
  attachments: { filename: string; verdict: string | null; signature: string | null; mxcUri: string | null }[];
  corrections: { revision: number; summary: Summary }[];
  deliveries: { organisationId: string; state: string; reason: string | null; eventId: string | null }[];
  errcode?: string;
  error?: string;
  details?: { path: string; message: string }[];
}

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\!]/g, "\\$&");

describe("circulars", () => {
  let stack: Stack;
  let staffToken: string;
  let clerkA: TestUser;
  const rooms: Record<string, string> = {};
  const orgs = [
    { id: "schule-a", name: "Schule A", tags: ["schools"], email: "a@schule-a.example" },
    { id: "schule-b", name: "Schule B", tags: ["schools", "north"], email: "b@schule-b.example" },
    { id: "gemeinde-c", name: "Gemeinde C", tags: ["municipalities"], email: "c@gemeinde-c.example" },
  ];

  const api = <T = Circular>(method: string, path: string, body?: unknown, token = staffToken) => stack.api<T>(method, path, body, { token });
  const until = async (id: string, check: (c: Circular) => boolean, what: string, timeoutMs = 30_000) => {
    let last: Circular | undefined;
    await waitFor(
      `circular ${id}: ${what} (last: ${JSON.stringify(last && { state: last.state, summary: last.summary, corrections: last.corrections })})`,
      async () => {
        last = (await api("GET", `/api/v1/circulars/${id}`)).body;
        return check(last);
      },
      timeoutMs,
    );
    return last!;
  };
  /** Events of the circular in a room, as the homeserver holds them. */
  const textsIn = async (roomId: string, marker: string) =>
    (await stack.timeline(roomId)).filter((e: RoomEvent) => e.type === "m.room.message" && e.sender === stack.botUserId && String((e.content as { body?: unknown }).body).includes(marker) && !(e.content as Record<string, unknown>)["m.relates_to"]);
  const multipart = (fields: Record<string, string>, files: { name: string; content: Buffer; type: string }[]) => {
    const form = new FormData();
    for (const [k, v] of Object.entries(fields)) form.append(k, v);
    for (const f of files) form.append("attachment", new Blob([new Uint8Array(f.content)], { type: f.type }), f.name);
    return fetch(`${stack.publicUrl}/api/v1/circulars`, { method: "POST", headers: { authorization: `Bearer ${staffToken}` }, body: form }).then(async (res) => ({ status: res.status, body: (await res.json()) as Circular }));
  };
  /** Media uploads the test homeserver received (undefined on a real homeserver, where rooms show the same thing by their mxc). */
  const uploads = () => stack.hs?.faults.requests("*", /^\/_matrix\/media\/v3\/upload/);
  const scans = async () => {
    const text = await (await fetch(`http://127.0.0.1:${stack.kuvert!.metricsPort}/metrics`)).text();
    return [...text.matchAll(/^kuvert_scan_duration_seconds_count\{[^}]*\} (\d+)/gm)].reduce((n, m) => n + Number(m[1]), 0);
  };
  const mailsTo = (address: string) => stack.smtp.messages.filter((m) => m.to && "text" in m.to && m.to.text === address);
  const circularStaging = () => readdirSync(circularStagingDir(stack.config));

  before(async () => {
    stack = await startStack({ name: "circulars", configure: (c) => void (c.circulars = { progressIntervalSeconds: 0.5 }) });
    staffToken = await createToken(stack.kuvert!.db, "console", ["staff"], "test");
    clerkA = await stack.user("clerk-a");
    await clerkA.start();
    for (const o of orgs) {
      const clerks = o.id === "schule-a" ? [{ matrixId: clerkA.userId, email: o.email }] : [{ email: o.email }];
      const res = await stack.api("POST", "/api/v1/organisations", { id: o.id, name: o.name, tags: o.tags, clerks });
      assert.equal(res.status, 201, JSON.stringify(res.body));
    }
    for (const o of orgs) rooms[o.id] = await stack.roomOf(o.id);
    await clerkA.waitForInvite(rooms["schule-a"]!);
    await clerkA.join(rooms["schule-a"]!);
    const staffRoomId = stack.kuvert!.services.staffRoom.roomId!;
    await stack.staff.start();
    await stack.staff.waitForInvite(staffRoomId);
    await stack.staff.join(staffRoomId);
  });
  after(() => stack.stop());

  let first: Circular;

  it("sends a circular to a tag: exactly the tagged rooms, Markdown as Matrix HTML, one e-mail per clerk, one progress message edited", async () => {
    const text = "# Schließtage\nDas Büro ist vom **24. Dezember** bis 1. Januar [geschlossen](https://body.example/ferien).\n<script>alert(1)</script>\n\n- Notdienst: 0800 123";
    const res = await api("POST", "/api/v1/circulars", { text, targets: { tag: "schools" } });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    assert.deepEqual(res.body.summary, { pending: 2, delivered: 0, failed: 0 });
    first = await until(res.body.id, (c) => c.state === "sent", "sent");
    assert.deepEqual(first.summary, { pending: 0, delivered: 2, failed: 0 });
    assert.deepEqual(
      first.deliveries.map((d) => [d.organisationId, d.state]),
      [
        ["schule-a", "delivered"],
        ["schule-b", "delivered"],
      ],
    );

    for (const id of ["schule-a", "schule-b"]) {
      const events = await textsIn(rooms[id]!, "Schließtage");
      assert.equal(events.length, 1, `one circular in ${id}`);
      const content = events[0]!.content as Record<string, string>;
      assert.equal(content.msgtype, "m.text");
      assert.equal(content.format, "org.matrix.custom.html");
      assert.match(content.formatted_body!, /<h1>Schließtage<\/h1>/);
      assert.match(content.formatted_body!, /<strong>24\. Dezember<\/strong>/);
      assert.match(content.formatted_body!, /<a href="https:\/\/body\.example\/ferien">geschlossen<\/a>/);
      assert.match(content.formatted_body!, /<li>Notdienst: 0800 123<\/li>/);
      assert.doesNotMatch(content.formatted_body!, /script/);
      assert.equal(content.body, text, "the plain body is the text as written");
      assert.equal(first.deliveries.find((d) => d.organisationId === id)!.eventId, events[0]!.event_id);
    }
    assert.equal((await textsIn(rooms["gemeinde-c"]!, "Schließtage")).length, 0, "the untagged organisation gets nothing");
    // The clerk sees it in Element.
    const seen = await clerkA.waitForEvent(rooms["schule-a"]!, "the circular", (e) => String(e.getContent().body).includes("Schließtage"));
    assert.equal(seen.getSender(), stack.botUserId);

    await waitFor("e-mails to both school clerks", () => mailsTo("a@schule-a.example").length === 1 && mailsTo("b@schule-b.example").length === 1);
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(mailsTo("a@schule-a.example").length, 1);
    assert.equal(mailsTo("b@schule-b.example").length, 1);
    assert.equal(mailsTo("c@gemeinde-c.example").length, 0);
    const mail = mailsTo("a@schule-a.example")[0]!;
    assert.match(mail.subject ?? "", /Rundschreiben/);
    assert.doesNotMatch(mail.text ?? "", /Schließtage|Dezember/, "the e-mail does not carry the circular's text");

    // One progress message in the staff room, edited as the fan-out moved; the last edit says it is done.
    const staffTimeline = await stack.timeline(stack.kuvert!.services.staffRoom.roomId!);
    const progress = staffTimeline.filter((e) => e.sender === stack.botUserId && String((e.content as { body?: unknown }).body).startsWith(`Rundschreiben ${first.id}`));
    assert.equal(progress.length, 1, "one progress message");
    const edits = staffTimeline.filter((e) => (e.content as { "m.relates_to"?: { rel_type?: string; event_id?: string } })["m.relates_to"]?.event_id === progress[0]!.event_id);
    assert.ok(edits.length >= 1);
    const last = edits.at(-1)!.content as { body: string; "m.new_content": { body: string }; "m.relates_to": { rel_type: string } };
    assert.equal(last["m.relates_to"].rel_type, "m.replace");
    assert.match(last.body, /^\* /);
    assert.match(last["m.new_content"].body, /versandt: 2 von 2 zugestellt/);
  });

  it("sends a correction as an edit (m.replace) to exactly the rooms that got the original", async () => {
    const res = await api<{ revision: number; rooms: number }>("POST", `/api/v1/circulars/${first.id}/corrections`, { text: "# Schließtage\nDas Büro ist vom **23. Dezember** bis 1. Januar geschlossen." });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    assert.equal(res.body.revision, 1);
    assert.equal(res.body.rooms, 2);
    await until(first.id, (c) => c.corrections[0]?.summary.delivered === 2, "correction delivered");
    for (const id of ["schule-a", "schule-b"]) {
      const original = first.deliveries.find((d) => d.organisationId === id)!.eventId!;
      const edits = (await stack.timeline(rooms[id]!)).filter((e) => (e.content as { "m.relates_to"?: { event_id?: string } })["m.relates_to"]?.event_id === original);
      assert.equal(edits.length, 1, `one edit in ${id}`);
      const c = edits[0]!.content as { body: string; formatted_body: string; "m.new_content": Record<string, string>; "m.relates_to": { rel_type: string } };
      assert.equal(c["m.relates_to"].rel_type, "m.replace");
      assert.match(c.body, /^\* # Schließtage/);
      assert.match(c.formatted_body, /^\* <h1>/);
      assert.match(c["m.new_content"].formatted_body!, /<strong>23\. Dezember<\/strong>/);
      assert.equal(c["m.new_content"].msgtype, "m.text");
      assert.equal((c["m.new_content"] as Record<string, unknown>)["m.relates_to"], undefined);
    }
    assert.equal((await stack.timeline(rooms["gemeinde-c"]!)).filter((e) => (e.content as Record<string, unknown>)["m.relates_to"]).length, 0);
    // Element shows the corrected text in place of the original.
    await clerkA.until("the edit applied", () => {
      const ev = clerkA.timeline(rooms["schule-a"]!).find((e) => e.getId() === first.deliveries[0]!.eventId);
      return ev?.replacingEvent() ? ev : undefined;
    });
  });

  it("scans an attachment once, uploads it once, and every room references the same media", async () => {
    const uploadsBefore = uploads();
    const scansBefore = await scans();
    const res = await multipart({ text: "Neue Beitragsordnung, siehe Anlage.", targets: JSON.stringify({ all: true }) }, [{ name: "Beitragsordnung 2027.pdf", content: pdf("Beitragsordnung"), type: "application/pdf" }]);
    assert.equal(res.status, 201, JSON.stringify(res.body));
    const c = await until(res.body.id, (x) => x.state === "sent", "sent");
    assert.equal(c.summary.delivered, 3);
    assert.equal(c.attachments[0]!.verdict, "clean");
    if (stack.hs) assert.equal(uploads()! - uploadsBefore!, 1, "one upload for three rooms");
    assert.equal((await scans()) - scansBefore, 1, "one scan for three rooms");
    const mxc = c.attachments[0]!.mxcUri!;
    for (const o of orgs) {
      const files = (await stack.timeline(rooms[o.id]!)).filter((e) => (e.content as { msgtype?: string; body?: string }).msgtype === "m.file" && (e.content as { body?: string }).body === "Beitragsordnung 2027.pdf");
      assert.equal(files.length, 1, `one file event in ${o.id}`);
      assert.equal((files[0]!.content as { url: string }).url, mxc);
      assert.equal((files[0]!.content as { info: { mimetype: string } }).info.mimetype, "application/pdf");
    }
    assert.deepEqual(await stack.download(mxc), pdf("Beitragsordnung"), "the media holds the attachment's bytes");
    assert.deepEqual(circularStaging(), [], "the staged attachment is gone once uploaded");
  });

  it("stops a circular whose attachment is infected before any room gets it, and tells staff which attachment and why", async () => {
    const uploadsBefore = uploads();
    const res = await multipart({ text: "Rundschreiben mit Virus-Anlage", targets: JSON.stringify({ tag: "schools" }) }, [
      { name: "harmlos.pdf", content: pdf("harmlos"), type: "application/pdf" },
      { name: "eicar.txt", content: EICAR, type: "text/plain" },
    ]);
    assert.equal(res.status, 201, JSON.stringify(res.body));
    const c = await until(res.body.id, (x) => x.state === "stopped", "stopped");
    assert.match(c.reason ?? "", /eicar\.txt/);
    assert.equal(c.attachments[1]!.verdict, "infected");
    assert.match(c.attachments[1]!.signature ?? "", /Eicar/i);
    assert.deepEqual(c.summary, { pending: 0, delivered: 0, failed: 2 });
    for (const o of orgs) assert.equal((await textsIn(rooms[o.id]!, "Virus-Anlage")).length, 0);
    if (stack.hs) assert.equal(uploads(), uploadsBefore, "nothing was uploaded");
    await stack.staff.waitForEvent(stack.kuvert!.services.staffRoom.roomId!, "the alert naming eicar.txt", (e) => /eicar\.txt.*Eicar/i.test(String(e.getContent().body)));
    // The e-mail names the circular and the attachment's position, never the file.
    await waitFor("the staff mailbox alert", () => mailsTo("staff@body.example").some((m) => (m.text ?? "").includes(res.body.id) && /Anlage 2/.test(m.text ?? "")));
    assert.ok(!mailsTo("staff@body.example").some((m) => /eicar\.txt/.test(`${m.subject ?? ""}\n${m.text ?? ""}`)), "no file name in the staff e-mail");
    await waitFor("staged attachments removed", () => circularStaging().length === 0);
  });

  it("stops a circular whose attachment cannot be scanned whole (a password-protected ZIP) and says so as such, not as malware", async () => {
    const locked = smallZip([{ name: "Haushalt.pdf", content: pdf("Haushalt") }], { password: "geheim" });
    const res = await multipart({ text: "Rundschreiben mit verschlüsselter Anlage", targets: JSON.stringify({ tag: "schools" }) }, [{ name: "haushalt.zip", content: locked, type: "application/zip" }]);
    assert.equal(res.status, 201, JSON.stringify(res.body));
    const c = await until(res.body.id, (x) => x.state === "stopped", "stopped");
    assert.equal(c.attachments[0]!.verdict, "infected", "what cannot be scanned whole is not clean");
    assert.match(c.attachments[0]!.signature ?? "", /Encrypted/i, "clamd's or Kuvert's name for it");
    for (const o of orgs) assert.equal((await textsIn(rooms[o.id]!, "verschlüsselter Anlage")).length, 0);
    const alert = await stack.staff.waitForEvent(stack.kuvert!.services.staffRoom.roomId!, "the alert naming haushalt.zip", (e) => /haushalt\.zip/.test(String(e.getContent().body)));
    const body = String(alert.getContent().body);
    assert.match(body, /KUVERT_UNSCANNABLE/);
    assert.match(body, /Passwort/);
    assert.doesNotMatch(body, /Schadsoftware/);
    const db = stack.kuvert!.db;
    const audited = await db.query<{ details: { reason: string; why?: string } }>("SELECT details FROM audit_log WHERE action = 'circular.stopped' AND object = $1", [res.body.id]);
    assert.deepEqual(
      audited.rows.map((r) => [r.details.reason, r.details.why]),
      [["unscannable", "encrypted"]],
    );
  });

  it("retries rate limits (429 with retry_after_ms) and server errors, and serves every room once (test homeserver: 429 and 502 on demand)", async () => {
    const orgRooms = new RegExp(`/rooms/(${Object.values(rooms).map(escape).join("|")})/send/m\\.room\\.message/`);
    const limit = stack.fixture.faults.rateLimit("PUT", orgRooms, { perSecond: 2, burst: 1 });
    stack.fixture.faults.failNext("PUT", orgRooms, 1, 502, { errcode: "M_UNKNOWN", error: "Bad gateway" });
    try {
      const res = await api("POST", "/api/v1/circulars", { text: "Gedrosselt zugestellt", targets: { all: true } });
      assert.equal(res.status, 201);
      const c = await until(res.body.id, (x) => x.state === "sent", "sent", 60_000);
      assert.deepEqual(c.summary, { pending: 0, delivered: 3, failed: 0 });
      assert.ok(limit.refused() > 0, "the homeserver refused some sends");
      for (const o of orgs) assert.equal((await textsIn(rooms[o.id]!, "Gedrosselt")).length, 1, `once in ${o.id}`);
    } finally {
      limit.remove();
    }
  });

  it("schedules a circular for later, cancels it before it starts, and sends another at its time", async () => {
    const later = await api("POST", "/api/v1/circulars", { text: "Später", targets: { organisations: ["gemeinde-c"] }, scheduledAt: new Date(Date.now() + 3600_000).toISOString() });
    assert.equal(later.status, 201);
    assert.equal(later.body.state, "scheduled");
    const cancelled = await api("POST", `/api/v1/circulars/${later.body.id}/cancel`);
    assert.equal(cancelled.status, 200);
    assert.equal(cancelled.body.state, "cancelled");
    assert.equal(cancelled.body.deliveries[0]!.state, "failed");
    assert.equal((await api("POST", `/api/v1/circulars/${later.body.id}/cancel`)).status, 200, "cancelling twice is fine");

    const soon = await api("POST", "/api/v1/circulars", { text: "Gleich geht es los", targets: { organisations: ["gemeinde-c"] }, scheduledAt: new Date(Date.now() + 2500).toISOString() });
    assert.equal(soon.body.state, "scheduled");
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal((await textsIn(rooms["gemeinde-c"]!, "Gleich geht es los")).length, 0, "not before its time");
    await until(soon.body.id, (c) => c.state === "sent", "sent");
    assert.equal((await textsIn(rooms["gemeinde-c"]!, "Gleich geht es los")).length, 1);
    assert.equal((await textsIn(rooms["gemeinde-c"]!, "Später")).length, 0);

    const tooLate = await api("POST", `/api/v1/circulars/${soon.body.id}/cancel`);
    assert.equal(tooLate.status, 409);
    assert.equal(tooLate.body.errcode, "KUVERT_CIRCULAR_STATE");
  });

  it("refuses bad input with a code and stores nothing", async () => {
    const count = async () => (await api<{ circulars: unknown[] }>("GET", "/api/v1/circulars")).body.circulars.length;
    const before = await count();
    const cases: [unknown, number, string][] = [
      [{ text: "  \n ", targets: { all: true } }, 400, "KUVERT_CIRCULAR_EMPTY"],
      [{ text: "x", targets: { tag: "nobody-has-this" } }, 400, "KUVERT_UNKNOWN_TAG"],
      [{ text: "x", targets: { organisations: ["schule-a", "no-such-org"] } }, 400, "KUVERT_UNKNOWN_ORGANISATIONS"],
      [{ text: "x", targets: { all: true }, scheduledAt: "2020-01-01T00:00:00Z" }, 400, "KUVERT_SCHEDULE_IN_PAST"],
      [{ text: "x", targets: { all: true }, scheduledAt: "tomorrow" }, 400, "KUVERT_INVALID_INPUT"],
      [{ text: "x", targets: { everyone: true } }, 400, "KUVERT_INVALID_INPUT"],
      [{ text: "x" }, 400, "KUVERT_INVALID_INPUT"],
    ];
    for (const [body, status, errcode] of cases) {
      const res = await api("POST", "/api/v1/circulars", body);
      assert.equal(res.status, status, JSON.stringify({ body, res: res.body }));
      assert.equal(res.body.errcode, errcode, JSON.stringify(res.body));
    }
    const unknown = await api("POST", "/api/v1/circulars", { text: "x", targets: { organisations: ["no-such-org"] } });
    assert.deepEqual(unknown.body.details, [{ path: "targets.organisations.0", message: "unknown organisation no-such-org" }]);
    const badJson = await stack.api("POST", "/api/v1/circulars", "{nope", { token: staffToken });
    assert.equal(badJson.status, 400);
    // An attachment of a type that is not accepted (judged by content): refused, nothing staged.
    const exe = await multipart({ text: "x", targets: JSON.stringify({ all: true }) }, [{ name: "tool.exe", content: Buffer.concat([Buffer.from("MZ"), Buffer.alloc(300, 0x90)]), type: "application/pdf" }]);
    assert.equal(exe.status, 415, JSON.stringify(exe.body));
    assert.deepEqual(circularStaging(), []);
    // Not for drop tokens.
    const dropToken = await createToken(stack.kuvert!.db, "levy", ["drop"], "test");
    assert.equal((await api("POST", "/api/v1/circulars", { text: "x", targets: { all: true } }, dropToken)).status, 403);
    // A correction before the circular is sent, and of an unknown one.
    assert.equal((await api("POST", "/api/v1/circulars/circ_unknown/corrections", { text: "x" })).status, 404);
    assert.equal(await count(), before, "nothing was stored");
    // The OpenAPI document describes the endpoints with the schema that checks the input.
    const doc = await stack.api<{ paths: Record<string, unknown>; components: { schemas: Record<string, { required?: string[] }> } }>("GET", "/api/v1/openapi.json", undefined, { token: null });
    for (const path of ["/circulars", "/circulars/{id}", "/circulars/{id}/cancel", "/circulars/{id}/corrections"]) assert.ok(doc.body.paths[path], path);
    assert.deepEqual(doc.body.components.schemas.CircularInput!.required?.sort(), ["targets", "text"]);
  });

  it("takes a circular from the staff room: command on the first line, Markdown below, the file posted just before as attachment", async () => {
    const staffRoomId = stack.kuvert!.services.staffRoom.roomId!;
    const content = pdf("Anlage aus dem Raum");
    const upload = await stack.staff.client.uploadContent(new Uint8Array(content), { name: "Merkblatt.pdf", type: "application/pdf" });
    await stack.staff.client.sendMessage(staffRoomId, { msgtype: "m.file", body: "Merkblatt.pdf", filename: "Merkblatt.pdf", url: upload.content_uri, info: { mimetype: "application/pdf", size: content.length } } as never);
    const command = await stack.staff.say(staffRoomId, "!circular org:schule-a,gemeinde-c\n## Merkblatt\nBitte **beachten** Sie das Merkblatt.");
    const reply = await stack.staff.waitForEvent(staffRoomId, "the reply to !circular", (e) => e.getContent()["m.relates_to"]?.["m.in_reply_to"]?.event_id === command);
    const id = /circ_[A-Za-z0-9_-]+/.exec(String(reply.getContent().body))?.[0];
    assert.ok(id, String(reply.getContent().body));
    assert.match(String(reply.getContent().body), /2 Organisationen mit 1 Anlage/);
    const c = await until(id, (x) => x.state === "sent", "sent");
    assert.equal(c.attachments[0]!.filename, "Merkblatt.pdf");
    assert.equal(c.attachments[0]!.verdict, "clean");
    for (const org of ["schule-a", "gemeinde-c"]) {
      const [text] = await textsIn(rooms[org]!, "Merkblatt");
      assert.match((text!.content as { formatted_body: string }).formatted_body, /<h2>Merkblatt<\/h2>/);
      const file = (await stack.timeline(rooms[org]!)).filter((e) => (e.content as { body?: string }).body === "Merkblatt.pdf");
      assert.equal(file.length, 1);
      assert.equal((file[0]!.content as { url: string }).url, upload.content_uri, "the scanned media, referenced as it is");
    }
    assert.equal((await textsIn(rooms["schule-b"]!, "Merkblatt")).length, 0);

    // Status and correction from the staff room.
    const status = await stack.staff.say(staffRoomId, `!circular status ${id}`);
    const statusReply = await stack.staff.waitForEvent(staffRoomId, "the status reply", (e) => e.getContent()["m.relates_to"]?.["m.in_reply_to"]?.event_id === status);
    assert.match(String(statusReply.getContent().body), /versandt: 2 von 2 zugestellt/);
    const correct = await stack.staff.say(staffRoomId, `!circular correct ${id}\n## Merkblatt (neu)\nBitte beachten Sie das neue Merkblatt.`);
    const correctReply = await stack.staff.waitForEvent(staffRoomId, "the correction reply", (e) => e.getContent()["m.relates_to"]?.["m.in_reply_to"]?.event_id === correct);
    assert.match(String(correctReply.getContent().body), /Korrektur 1 .* 2 Räume/);
    await until(id, (x) => x.corrections[0]?.summary.delivered === 2, "correction delivered");

    // Mistakes get a sentence.
    const bad = await stack.staff.say(staffRoomId, "!circular tag:nobody-has-this\nText");
    const badReply = await stack.staff.waitForEvent(staffRoomId, "the refusal", (e) => e.getContent()["m.relates_to"]?.["m.in_reply_to"]?.event_id === bad);
    assert.match(String(badReply.getContent().body), /Keine aktive Organisation hat das Tag „nobody-has-this“/);
    const cancelSent = await stack.staff.say(staffRoomId, `!circular cancel ${id}`);
    const cancelReply = await stack.staff.waitForEvent(staffRoomId, "the cancel refusal", (e) => e.getContent()["m.relates_to"]?.["m.in_reply_to"]?.event_id === cancelSent);
    assert.match(String(cancelReply.getContent().body), /Das ging nicht: .*sent/);
    // !help in the staff room lists the command.
    const help = await stack.staff.say(staffRoomId, "!help");
    const helpReply = await stack.staff.waitForEvent(staffRoomId, "the help", (e) => e.getContent()["m.relates_to"]?.["m.in_reply_to"]?.event_id === help);
    assert.match(String(helpReply.getContent().body), /!circular all \| tag:<Tag>/);
  });

  it("stops a circular from the staff room whose file the homeserver no longer gives out, and says which", async () => {
    const staffRoomId = stack.kuvert!.services.staffRoom.roomId!;
    await stack.staff.client.sendMessage(staffRoomId, { msgtype: "m.file", body: "Verschwunden.pdf", url: `mxc://${stack.config.homeserver.domain}/NoSuchMedia123`, info: { mimetype: "application/pdf", size: 1234 } } as never);
    const command = await stack.staff.say(staffRoomId, "!circular org:gemeinde-c\nMit verschwundener Anlage");
    const reply = await stack.staff.waitForEvent(staffRoomId, "the reply", (e) => e.getContent()["m.relates_to"]?.["m.in_reply_to"]?.event_id === command);
    const id = /circ_[A-Za-z0-9_-]+/.exec(String(reply.getContent().body))![0];
    const c = await until(id, (x) => x.state === "stopped", "stopped");
    assert.match(c.reason ?? "", /Verschwunden\.pdf/);
    assert.equal(c.summary.failed, 1);
    await stack.staff.waitForEvent(staffRoomId, "the alert", (e) => /Verschwunden\.pdf.*nicht mehr abrufbar/.test(String(e.getContent().body)));
    assert.equal((await textsIn(rooms["gemeinde-c"]!, "verschwundener Anlage")).length, 0);
  });

  it("takes tags from the command line, the admin API and the CSV import, and a circular to a tag follows them", async () => {
    const dir = tempDir("kuvert-tags-");
    try {
      writeFileSync(join(dir, "config.yaml"), stringify(stack.rawConfig));
      const kuvert = (...args: string[]) => promisify(execFile)(process.execPath, [join(repoRoot, "bin", "kuvert.js"), "--config", join(dir, "config.yaml"), ...args], { cwd: dir });
      assert.match((await kuvert("org", "tag", "gemeinde-c", "--add", "rural", "--add", "east")).stdout, /updated: gemeinde-c {2}\[east, municipalities, rural\]/);
      assert.match((await kuvert("org", "tag", "gemeinde-c", "--remove", "rural")).stdout, /updated: gemeinde-c {2}\[east, municipalities\]/);
      await assert.rejects(kuvert("org", "tag", "gemeinde-c", "--add", "Not A Tag"), /tag/);
      assert.match((await kuvert("org", "show", "gemeinde-c")).stdout, /tags: +east, municipalities/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const patched = await stack.api<{ organisation: { tags: string[] } }>("PATCH", "/api/v1/organisations/schule-a", { tags: ["schools", "east"] });
    assert.equal(patched.status, 200, JSON.stringify(patched.body));
    assert.deepEqual(patched.body.organisation.tags, ["east", "schools"]);
    const csv = "id,name,tags\nschule-b,Schule B,schools;north;east\n";
    const imported = await stack.api("POST", "/api/v1/organisations/import", csv, { contentType: "text/csv" });
    assert.equal(imported.status, 200, JSON.stringify(imported.body));
    const listed = await stack.api<{ organisations: { id: string; tags: string[] }[] }>("GET", "/api/v1/organisations?tag=east");
    assert.deepEqual(
      listed.body.organisations.map((o) => o.id),
      ["gemeinde-c", "schule-a", "schule-b"],
    );

    const res = await api("POST", "/api/v1/circulars", { text: "An den Osten", targets: { tag: "east" } });
    assert.equal(res.status, 201);
    await until(res.body.id, (c) => c.state === "sent" && c.summary.delivered === 3, "sent to three");
    for (const o of orgs) assert.equal((await textsIn(rooms[o.id]!, "An den Osten")).length, 1);
  });

  it("refuses !circular from a clerk, in their room and in the staff room, and sends nothing", async () => {
    const count = async () => (await api<{ circulars: unknown[] }>("GET", "/api/v1/circulars")).body.circulars.length;
    const before = await count();
    const sent = await clerkA.say(rooms["schule-a"]!, "!circular all\nVon einer Sachbearbeiterin");
    const reply = await clerkA.waitForEvent(rooms["schule-a"]!, "the refusal", (e) => e.getContent()["m.relates_to"]?.["m.in_reply_to"]?.event_id === sent);
    assert.match(String(reply.getContent().body), /nur im Raum der Mitarbeitenden/);
    // Even if a clerk were in the staff room, the role check refuses (event pushed as the homeserver would).
    const staffRoomId = stack.kuvert!.services.staffRoom.roomId!;
    const eventId = `$clerk-circular-${Date.now()}`;
    const pushed = await stack.pushTransaction(`txn-clerk-${Date.now()}`, [
      { event_id: eventId, room_id: staffRoomId, type: "m.room.message", sender: clerkA.userId, origin_server_ts: Date.now(), content: { msgtype: "m.text", body: "!circular all\nVon einer Sachbearbeiterin" } },
    ]);
    assert.equal(pushed.status, 200);
    await waitFor("the role refusal", async () => (await stack.timeline(staffRoomId)).some((e) => (e.content as { "m.relates_to"?: { "m.in_reply_to"?: { event_id?: string } } })["m.relates_to"]?.["m.in_reply_to"]?.event_id === eventId));
    const refusal = (await stack.timeline(staffRoomId)).find((e) => (e.content as { "m.relates_to"?: { "m.in_reply_to"?: { event_id?: string } } })["m.relates_to"]?.["m.in_reply_to"]?.event_id === eventId)!;
    assert.match(String((refusal.content as { body: string }).body), /dürfen nur Mitarbeitende/);
    assert.equal(await count(), before);
    for (const o of orgs) assert.equal((await textsIn(rooms[o.id]!, "Von einer Sachbearbeiterin")).length, 0);
  });

  it("records every delivery in the audit log, and the chain stays whole", async () => {
    const db = stack.kuvert!.db;
    const delivered = await db.query<{ n: string }>("SELECT count(*) AS n FROM circular_deliveries WHERE state = 'delivered' AND revision = 0");
    const audited = await db.query<{ n: string }>("SELECT count(*) AS n FROM audit_log WHERE action = 'circular.delivered'");
    assert.equal(audited.rows[0]!.n, delivered.rows[0]!.n);
    const corrections = await db.query<{ n: string }>("SELECT count(*) AS n FROM audit_log WHERE action = 'circular.correction.delivered'");
    assert.equal(Number(corrections.rows[0]!.n), 4);
    for (const action of ["circular.created", "circular.sending", "circular.sent", "circular.cancelled", "circular.stopped", "circular.corrected"]) {
      const n = await db.query<{ n: string }>("SELECT count(*) AS n FROM audit_log WHERE action = $1", [action]);
      assert.ok(Number(n.rows[0]!.n) >= 1, action);
    }
    const verified = await verifyAuditLog(db);
    assert.equal(verified.ok, true, JSON.stringify(verified.brokenAt));
  });
});

describe("circulars switched off (modules.circulars: false)", () => {
  let stack: Stack;
  before(async () => {
    stack = await startStack({ name: "circulars-off", configure: (c) => void (c.modules = { circulars: false }) });
  });
  after(() => stack.stop());

  it("answers KUVERT_MODULE_DISABLED in the API and says so in the staff room", async () => {
    const res = await stack.api<{ errcode: string }>("POST", "/api/v1/circulars", { text: "x", targets: { all: true } });
    assert.equal(res.status, 403);
    assert.equal(res.body.errcode, "KUVERT_MODULE_DISABLED");
    assert.equal((await stack.api<{ errcode: string }>("GET", "/api/v1/circulars")).body.errcode, "KUVERT_MODULE_DISABLED");
    const staffRoomId = await waitForStaffRoom(stack);
    const eventId = `$circular-off-${Date.now()}`;
    await stack.pushTransaction(`txn-off-${Date.now()}`, [{ event_id: eventId, room_id: staffRoomId, type: "m.room.message", sender: stack.staff.userId, origin_server_ts: Date.now(), content: { msgtype: "m.text", body: "!circular all\nText" } }]);
    const repliesTo = (e: RoomEvent) => (e.content as { "m.relates_to"?: { "m.in_reply_to"?: { event_id?: string } } })["m.relates_to"]?.["m.in_reply_to"]?.event_id === eventId;
    await waitFor("the reply", async () => (await stack.timeline(staffRoomId)).some(repliesTo));
    assert.match(String(((await stack.timeline(staffRoomId)).find(repliesTo)!.content as { body: string }).body), /abgeschaltet \(modules\.circulars\)/);
  });
});

async function waitForStaffRoom(stack: Stack): Promise<string> {
  let roomId: string | null = null;
  await waitFor("the staff room", () => (roomId = stack.kuvert!.services.staffRoom.roomId) !== null);
  return roomId!;
}
