// Three Kuvert processes on one PostgreSQL and one staging store, behind the deployment's own
// balancer (HAProxy with deploy/haproxy/haproxy.cfg, test/support/haproxy.ts) for the
// homeserver's transactions and the public API, work through a 300-document bulk
// batch, a circular to 200 organisations and clerks' uploads (some EICAR) while a driver kills
// one of them at random (SIGKILL) every few seconds and starts it again. Then all three run
// until the work drains, and what a clerk, the staff mailbox and the dpo see shows that nothing
// was lost or done twice: every document in its room once, the circular in every room once,
// every notification in exactly one e-mail, every upload with exactly one outcome, and an audit
// chain that verifies. The kills are logged in test-artifacts/logs/processes-crash.kills.log.
import assert from "node:assert/strict";
import { appendFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { verifyAuditLog } from "../../appservice/audit/audit.ts";
import { openDatabase, type Database } from "../../appservice/db/database.ts";
import { EICAR } from "../support/clamd.ts";
import { pdf, zip } from "../support/files.ts";
import { artifactsDir, startStack, testServerName, waitFor, type RoomEvent, type Stack } from "../support/harness.ts";
import type { TestUser } from "../support/matrix.ts";
import type { Balancer } from "../support/haproxy.ts";
import { processesBehindBalancer, type KuvertProcess } from "../support/processes.ts";

const ORGS = 200;
const DOCS = 300;
const UPLOADERS = 4;
const UPLOADS_EACH = 8;
const MIN_KILLS = 5;

const orgId = (i: number) => `org-${String(i).padStart(3, "0")}`;
const clerkMail = (i: number) => `clerk${i}@org${i}.example`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Upload {
  roomId: string;
  filename: string;
  infected: boolean;
  mxc: string;
  eventId: string;
}

describe("three Kuvert processes killed at random while they work", () => {
  let stack: Stack;
  let db: Database;
  const processes: KuvertProcess[] = [];
  let balancer: Balancer | undefined;
  const clerks: TestUser[] = [];
  const rooms = new Map<string, string>();
  const killLog = join(artifactsDir, "logs", "processes-crash.kills.log");

  before(async () => {
    stack = await startStack({ name: "processes-crash", childProcess: true });
    // The stack's own process makes way for three with listeners of their own; the ports the
    // registration and the suite use become the balancers'.
    const started = await processesBehindBalancer(stack, ["p1", "p2", "p3"]);
    processes.push(...started.processes);
    balancer = started.balancer;
    db = await openDatabase({ url: stack.config.database.url, embeddedDir: join(stack.workDir, "db"), poolSize: 2 });

    // 200 organisations, each clerk with an e-mail address; the first few clerks also have a
    // Matrix account, to upload files into their rooms.
    for (let i = 0; i < UPLOADERS; i++) clerks.push(await stack.user(`clerk${i}`));
    const csv = ["id,name,tags,clerks", ...Array.from({ length: ORGS }, (_, i) => `${orgId(i)},Organisation ${i},,${i < UPLOADERS ? `${clerks[i]!.userId} ` : ""}${clerkMail(i)}`)].join("\n");
    const imported = await stack.api<{ summary: Record<string, number> }>("POST", "/api/v1/organisations/import", csv, { contentType: "text/csv" });
    assert.equal(imported.status, 200, JSON.stringify(imported.body).slice(0, 500));
    assert.deepEqual(imported.body.summary, { created: ORGS, updated: 0, unchanged: 0, error: 0 });
    let ready = 0;
    await waitFor(
      () => `${ORGS} rooms (${ready} ready)`,
      async () => {
        const res = await stack.api<{ organisations: { id: string; roomId: string | null; roomState: string }[] }>("GET", "/api/v1/organisations?limit=5000");
        const done = res.body.organisations.filter((o) => o.roomState === "ready" && o.roomId);
        ready = done.length;
        for (const o of done) rooms.set(o.id, o.roomId!);
        return ready === ORGS;
      },
      240_000,
      1000,
    );
    // Each uploading clerk accepts the invite into their room, as in Element.
    for (let i = 0; i < UPLOADERS; i++) {
      const roomId = rooms.get(orgId(i))!;
      await waitFor(`${clerks[i]!.userId} to join ${roomId}`, async () => Boolean(await clerks[i]!.client.joinRoom(roomId)), 60_000, 500);
    }
  });

  after(async () => {
    await Promise.all(processes.map((p) => p.stop()));
    await balancer?.stop();
    await db?.close();
    await stack?.stop();
  });

  it(`loses nothing and does nothing twice: ${DOCS} documents, a circular to ${ORGS} rooms and clerks' uploads, with processes killed every few seconds`, async () => {
    const started = Date.now();
    writeFileSync(killLog, "");
    const mailsBefore = stack.smtp.messages.length;

    // The workload, started together.
    const files: Record<string, Buffer | string> = {};
    const lines = ["file,organisation,kind,reference"];
    for (let n = 0; n < DOCS; n++) {
      files[`docs/d${n}.pdf`] = pdf(`document ${n} ${"y".repeat(n * 13)}`);
      lines.push(`docs/d${n}.pdf,${orgId(n % ORGS)},Bescheid,REF-${n}`);
    }
    files["manifest.csv"] = lines.join("\n");
    const batch = await stack.api<{ id: string }>("POST", "/api/v1/batches", await zip(files), { contentType: "application/zip", headers: { "idempotency-key": "processes-crash" } });
    assert.equal(batch.status, 202, JSON.stringify(batch.body));
    const circularText = `Rundschreiben an alle ${started}`;
    const circular = await stack.api<{ id: string }>("POST", "/api/v1/circulars", { text: circularText, targets: { all: true } });
    assert.equal(circular.status, 201, JSON.stringify(circular.body));

    const uploads: Upload[] = [];
    const uploading = Promise.all(
      clerks.map(async (clerk, c) => {
        const roomId = rooms.get(orgId(c))!;
        for (let k = 0; k < UPLOADS_EACH; k++) {
          await sleep(500 + Math.floor(Math.random() * 1500));
          const infected = k % 4 === 3;
          const filename = `upload-${c}-${k}.${infected ? "txt" : "pdf"}`;
          const bytes = infected ? EICAR : pdf(`clerk ${c} upload ${k}`);
          const mxc = (await clerk.client.uploadContent(new Uint8Array(bytes), { name: filename, type: infected ? "text/plain" : "application/pdf" })).content_uri;
          const sent = await clerk.client.sendEvent(roomId, "m.room.message" as never, { msgtype: "m.file", body: filename, url: mxc, info: { size: bytes.length } } as never);
          uploads.push({ roomId, filename, infected, mxc, eventId: sent.event_id });
        }
      }),
    );
    let uploadsSent = false;
    // Awaited after the kills; a failed upload fails the test there.
    uploading.then(
      () => (uploadsSent = true),
      () => (uploadsSent = true),
    );

    // The driver's own reads go through the balancer too: one a process was answering when it was
    // killed is cut off mid-response (HAProxy resends a read only while no answer has begun), as
    // any client's would be. Such a read counts as "not yet"; any other error fails the test.
    const cutOff = (e: unknown) => e instanceof TypeError && (e.cause as { code?: string } | undefined)?.code === "UND_ERR_SOCKET";
    const workloadDone = async (): Promise<boolean> => {
      if (!uploadsSent) return false;
      let b, c;
      try {
        b = await stack.api<{ finished: boolean }>("GET", `/api/v1/batches/${batch.body.id}`);
        c = await stack.api<{ state: string }>("GET", `/api/v1/circulars/${circular.body.id}`);
      } catch (e) {
        if (!cutOff(e)) throw e;
        appendFileSync(killLog, `${new Date().toISOString()} a status read was cut off: ${String((e as Error).cause)}\n`);
        return false;
      }
      const inbound = await db.query<{ n: string }>("SELECT count(*) AS n FROM documents WHERE direction = 'inbound' AND state IN ('checked', 'removed')");
      return b.body.finished === true && c.body.state === "sent" && Number(inbound.rows[0]!.n) === uploads.length;
    };

    // The driver: every 1–2 s one of the running processes dies (one is always left running, so
    // the work goes on) and is started again a second later, while the others work on. Often
    // enough that the workload (about 20 s on two cores) sees at least MIN_KILLS of them.
    let kills = 0;
    const restarts: Promise<void>[] = [];
    while (!(await workloadDone())) {
      assert.ok(Date.now() - started < 240_000, "the workload finished within four minutes");
      await sleep(1000 + Math.floor(Math.random() * 1000));
      const running = processes.filter((p) => p.ready);
      if (running.length < 2) continue;
      const victim = running[Math.floor(Math.random() * running.length)]!;
      const pid = victim.pid;
      await victim.kill();
      kills++;
      appendFileSync(killLog, `${new Date().toISOString()} kill -9 ${victim.name} (pid ${pid}), kill ${kills}, ${Math.round((Date.now() - started) / 1000)} s in\n`);
      const restart = sleep(1000)
        .then(() => victim.start())
        .then(() => appendFileSync(killLog, `${new Date().toISOString()} ${victim.name} restarted (pid ${victim.pid})\n`));
      // Awaited below; a failed start fails the test there.
      restart.catch(() => undefined);
      restarts.push(restart);
    }
    await Promise.all(restarts);
    await uploading;
    appendFileSync(killLog, `${new Date().toISOString()} workload done after ${kills} kills, ${Math.round((Date.now() - started) / 1000)} s\n`);
    assert.ok(kills >= MIN_KILLS, `at least ${MIN_KILLS} processes were killed while the work ran (${kills})`);

    // All three run until the work drains: nothing pending, nothing given up, no lease left stuck.
    const pending = async () =>
      (
        await db.query<{ what: string; n: string }>(
          `SELECT 'documents' AS what, count(*) AS n FROM documents WHERE state IN ('received', 'scanning', 'held')
           UNION ALL SELECT 'inbound events', count(*) FROM inbound_events WHERE state <> 'done'
           UNION ALL SELECT 'circular deliveries', count(*) FROM circular_deliveries WHERE state <> 'delivered'
           UNION ALL SELECT 'e-mails', count(*) FROM mail_outbox WHERE state NOT IN ('sent', 'combined')`,
        )
      ).rows.filter((r) => r.n !== "0");
    let left: { what: string; n: string }[] = [];
    await waitFor(
      () => `the work to drain (${JSON.stringify(left)})`,
      async () => (left = await pending()).length === 0,
      90_000,
      500,
    );

    // What the status API says, then what the rooms show: every document in its room exactly
    // once, the circular in every room exactly once.
    assert.deepEqual((await stack.api<{ counts: Record<string, number> }>("GET", `/api/v1/batches/${batch.body.id}`)).body.counts, { delivered: DOCS });
    assert.deepEqual((await stack.api<{ summary: Record<string, number> }>("GET", `/api/v1/circulars/${circular.body.id}`)).body.summary, { pending: 0, delivered: ORGS, failed: 0 });
    const timelines = new Map<string, RoomEvent[]>();
    for (const roomId of rooms.values()) timelines.set(roomId, await stack.timeline(roomId));
    for (let i = 0; i < ORGS; i++) {
      const timeline = timelines.get(rooms.get(orgId(i))!)!;
      const fromKuvert = timeline.filter((e) => e.sender === stack.botUserId && e.type === "m.room.message");
      const expected = Array.from({ length: DOCS }, (_, n) => n)
        .filter((n) => n % ORGS === i)
        .map((n) => `d${n}.pdf`);
      const got = fromKuvert.filter((e) => e.content.msgtype === "m.file" && /^d\d+\.pdf$/.test(String(e.content.filename))).map((e) => String(e.content.filename));
      assert.deepEqual(got.sort(), expected.sort(), `each document for ${orgId(i)} is in its room exactly once`);
      assert.equal(fromKuvert.filter((e) => e.content.body === circularText).length, 1, `the circular is in the room of ${orgId(i)} exactly once`);
    }
    for (const n of [0, 1, 149, 250, 299]) {
      const event = timelines.get(rooms.get(orgId(n % ORGS))!)!.find((e) => e.content.filename === `d${n}.pdf`)!;
      assert.deepEqual(await stack.download(String(event.content.url)), pdf(`document ${n} ${"y".repeat(n * 13)}`), `d${n}.pdf arrived as sent`);
    }

    // Every upload has exactly one outcome: a clean one one checked mark and left alone, an
    // infected one redacted once, explained once and its media quarantined.
    assert.equal(uploads.length, UPLOADERS * UPLOADS_EACH);
    const audited = (await db.query<{ action: string; event_id: string; n: string }>("SELECT action, details->>'eventId' AS event_id, count(*) AS n FROM audit_log WHERE action IN ('inbound.checked', 'inbound.removed') GROUP BY 1, 2")).rows;
    for (const u of uploads) {
      const timeline = await stack.timeline(u.roomId);
      const own = timeline.find((e) => e.event_id === u.eventId);
      assert.ok(own, `${u.filename} is in the timeline`);
      const marks = timeline.filter((e) => e.type === "m.reaction" && e.sender === stack.botUserId && (e.content["m.relates_to"] as { event_id?: string } | undefined)?.event_id === u.eventId);
      const redactions = timeline.filter((e) => e.type === "m.room.redaction" && e.sender === stack.botUserId && (e.redacts === u.eventId || (e.content as { redacts?: string }).redacts === u.eventId));
      const explained = timeline.filter((e) => e.sender === stack.botUserId && e.type === "m.room.message" && String(e.content.body).includes(`„${u.filename}“`));
      const outcomes = audited.filter((a) => a.event_id === u.eventId);
      if (u.infected) {
        assert.deepEqual([marks.length, redactions.length, explained.length], [0, 1, 1], `${u.filename}: redacted once and explained once`);
        assert.equal(own.content.url, undefined, `${u.filename} is redacted`);
        assert.equal(await stack.download(u.mxc), undefined, `${u.filename} is quarantined`);
        assert.deepEqual(
          outcomes.map((a) => [a.action, a.n]),
          [["inbound.removed", "1"]],
        );
      } else {
        assert.deepEqual([marks.length, redactions.length, explained.length], [1, 0, 0], `${u.filename}: one checked mark, nothing else`);
        assert.equal(own.content.url, u.mxc);
        assert.deepEqual(
          outcomes.map((a) => [a.action, a.n]),
          [["inbound.checked", "1"]],
        );
      }
    }

    // Every notification in exactly one e-mail. An e-mail sent again after a crash with the same
    // Message-ID counts once (the outbox's rule); one the outbox does not know of, or a
    // notification in two e-mails, would be a duplicate a clerk sees.
    const received = new Map(stack.smtp.messages.slice(mailsBefore).map((m) => [m.messageId, m]));
    const outbox = (await db.query<{ kind: string; recipient: string; message_id: string; n: string }>("SELECT kind, recipient, message_id, count(*) AS n FROM mail_outbox WHERE state IN ('sent', 'combined') GROUP BY 1, 2, 3")).rows;
    const known = new Set(outbox.map((r) => r.message_id));
    assert.deepEqual(
      [...received.keys()].filter((id) => !known.has(id!)),
      [],
      "every e-mail received is one the outbox recorded as sent",
    );
    assert.deepEqual(
      outbox.filter((r) => !received.has(r.message_id)).map((r) => r.message_id),
      [],
      "every e-mail the outbox recorded as sent was received",
    );
    const references = new Map<string, string[]>();
    for (const m of received.values()) {
      const to = m.to && "text" in m.to ? m.to.text : "";
      for (const ref of new Set((m.text ?? "").match(/REF-\d+|circ_[A-Za-z0-9_-]+/g) ?? [])) references.set(`${ref} ${to}`, [...(references.get(`${ref} ${to}`) ?? []), m.messageId!]);
    }
    for (let n = 0; n < DOCS; n++) assert.equal(references.get(`REF-${n} ${clerkMail(n % ORGS)}`)?.length, 1, `REF-${n} announced to its clerk in exactly one e-mail`);
    for (let i = 0; i < ORGS; i++) assert.equal(references.get(`${circular.body.id} ${clerkMail(i)}`)?.length, 1, `the circular announced to ${clerkMail(i)} in exactly one e-mail`);
    assert.equal(references.size, DOCS + ORGS, "no reference announced to anyone else");
    const inboundMails = (await db.query<{ n: string }>("SELECT count(*) AS n FROM mail_outbox WHERE kind = 'inbound-file' AND state IN ('sent', 'combined')")).rows[0]!.n;
    assert.equal(Number(inboundMails), uploads.filter((u) => !u.infected).length, "the staff mailbox hears of every clean upload once");

    // The dpo's check: the audit chain, written by three processes that died again and again, holds.
    const verified = await verifyAuditLog(db);
    assert.ok(verified.ok, `the audit chain verifies (${JSON.stringify(verified.brokenAt)})`);
    const counts = balancer!.answered();
    const answered = (frontend: string) => processes.map((p, i) => `${p.name} ${counts.get(`${frontend} kuvert-${i + 1}`) ?? 0}`).join(", ");
    appendFileSync(
      killLog,
      `${new Date().toISOString()} checked after ${Math.round((Date.now() - started) / 1000)} s on ${testServerName()}; audit rows ${verified.rows}; ` + `appservice requests answered: ${answered("appservice")}; API requests answered: ${answered("public")}\n`,
    );
  });
});
