// Console sessions and the console's API, without a browser: the OpenID exchange, roles and
// scopes, the console header, idle and absolute expiry, sign-out, refused and forged sign-ins
// (audited, rate limited), the audit, status and dead-mail endpoints, the import preview, and
// /console/ with and without a built console.
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { openDatabase, type Database } from "../../appservice/db/database.ts";
import { version } from "../../appservice/version.ts";
import { consoleRequest, createAccount, openIdToken, plannedAccount, signIn, type Account } from "../support/console.ts";
import { startStack, testServerName, testServerPattern, waitFor, type Stack } from "../support/harness.ts";

interface AuditEntry {
  seq: string;
  actor: string;
  action: string;
  outcome: string;
  organisationId: string | null;
  details: Record<string, unknown>;
}

describe("console sessions and API", () => {
  let stack: Stack;
  let db: Database;
  let staticDir: string;
  const serverName = testServerName();
  const dpo = plannedAccount("dpo", serverName);
  const caseWorker = plannedAccount("caseworker", serverName);
  const clerk = plannedAccount("clerk", serverName);
  let admin: Account;

  const auditRows = async (action: string) => (await db.query<{ actor: string; outcome: string; details: Record<string, unknown> }>("SELECT actor, outcome, details FROM audit_log WHERE action = $1 ORDER BY seq", [action])).rows;
  const session = async (account: Account) => {
    const res = await signIn(stack, await openIdToken(stack.access, account));
    assert.equal(res.status, 201, JSON.stringify(res.body));
    assert.ok(res.cookie, "no session cookie");
    return res.cookie;
  };

  before(async () => {
    stack = await startStack({
      name: "console-api",
      configure: (raw) => {
        staticDir = join(String((raw.documents as { stagingDir: string }).stagingDir), "..", "console-dist");
        (raw.staff as unknown[]).push({ userId: dpo.userId, roles: ["dpo"] }, { userId: caseWorker.userId, roles: ["staff"] });
        raw.console = { staticDir, idleMinutes: 5, signInAttemptsPerMinute: 8 };
      },
    });
    admin = { userId: stack.staff.userId, localpart: stack.staff.userId.slice(1).split(":")[0]!, password: stack.staff.password };
    for (const a of [dpo, caseWorker, clerk]) await createAccount(stack.access, a);
    db = await openDatabase({ url: stack.config.database.url, embeddedDir: "", poolSize: 2 });
  });

  after(async () => {
    await db?.close();
    await stack?.stop();
  });

  it("exchanges an OpenID token for an HttpOnly, Secure, SameSite=Strict cookie and knows the person's roles", async () => {
    const res = await signIn(stack, await openIdToken(stack.access, admin));
    assert.equal(res.status, 201);
    const setCookie = res.headers.get("set-cookie")!;
    assert.match(setCookie, /^kuvert_session=[A-Za-z0-9_-]{43}; /);
    for (const attr of ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"]) assert.ok(setCookie.includes(attr), `cookie lacks ${attr}: ${setCookie}`);
    const me = await consoleRequest<{ signedIn: boolean; session: { userId: string; roles: string[]; scopes: string[] } }>(stack, "GET", "/api/v1/session", { cookie: res.cookie });
    assert.equal(me.body.signedIn, true);
    assert.equal(me.body.session.userId, admin.userId);
    assert.deepEqual(me.body.session.roles, ["admin"]);
    assert.deepEqual([...me.body.session.scopes].sort(), ["admin", "drop", "staff"]);
    // Only a hash of the session id is stored.
    const id = res.cookie!.split("=")[1]!;
    const stored = await db.query<{ id_hash: string }>("SELECT id_hash FROM console_sessions WHERE user_id = $1", [admin.userId]);
    assert.ok(stored.rows.length > 0 && stored.rows.every((r) => r.id_hash !== id && /^[0-9a-f]{64}$/.test(r.id_hash)));
    const audited = await auditRows("console.sign-in");
    assert.ok(audited.some((r) => r.actor === admin.userId && r.outcome === "ok"));
  });

  it("lets an admin session use the admin API, with the console header on changes, as the person in the audit log", async () => {
    const cookie = await session(admin);
    const list = await consoleRequest(stack, "GET", "/api/v1/organisations", { cookie, header: false });
    assert.equal(list.status, 200, "reading needs no console header");
    const org = { id: "console-api-org", name: "Console API Org", tags: ["schools"], clerks: [] };
    const forged = await consoleRequest(stack, "POST", "/api/v1/organisations", { cookie, body: org, header: false });
    assert.equal(forged.status, 403);
    assert.equal((forged.body as { errcode: string }).errcode, "KUVERT_CONSOLE_HEADER_MISSING");
    assert.equal((await stack.api("GET", `/api/v1/organisations/${org.id}`)).status, 404, "a refused request changed something");
    const created = await consoleRequest(stack, "POST", "/api/v1/organisations", { cookie, body: org });
    assert.equal(created.status, 201);
    const row = (await db.query<{ actor: string }>("SELECT actor FROM audit_log WHERE action = 'organisation.created' AND object = $1", [org.id])).rows[0];
    assert.equal(row?.actor, admin.userId);
  });

  it("keeps bearer tokens working as before, and a token wins over a cookie", async () => {
    const res = await stack.api("GET", "/api/v1/organisations");
    assert.equal(res.status, 200);
    const dpoCookie = await session(dpo);
    const both = await fetch(`${stack.publicUrl}/api/v1/organisations`, { headers: { cookie: dpoCookie, authorization: `Bearer ${stack.adminToken}` } });
    assert.equal(both.status, 200);
  });

  it("maps roles to scopes: staff deliver documents but do not administer; the dpo reads the audit log only", async () => {
    const staffCookie = await session(caseWorker);
    const choices = await consoleRequest<{ organisations: { id: string }[] }>(stack, "GET", "/api/v1/console/organisations", { cookie: staffCookie });
    assert.equal(choices.status, 200);
    assert.ok(choices.body.organisations.some((o) => o.id === "console-api-org"));
    assert.equal((await consoleRequest(stack, "GET", "/api/v1/organisations", { cookie: staffCookie })).status, 403);
    assert.equal((await consoleRequest(stack, "GET", "/api/v1/audit", { cookie: staffCookie })).status, 403);
    assert.equal((await consoleRequest(stack, "GET", "/api/v1/status", { cookie: staffCookie })).status, 403);

    const dpoCookie = await session(dpo);
    const audit = await consoleRequest<{ entries: AuditEntry[] }>(stack, "GET", "/api/v1/audit", { cookie: dpoCookie });
    assert.equal(audit.status, 200);
    assert.ok(audit.body.entries.length > 0);
    const refused = await consoleRequest<{ errcode: string; error: string }>(stack, "GET", "/api/v1/organisations", { cookie: dpoCookie });
    assert.equal(refused.status, 403);
    assert.equal(refused.body.errcode, "KUVERT_FORBIDDEN");
    assert.match(refused.body.error, /Your roles \(dpo\)/);
    const deliver = await consoleRequest(stack, "POST", "/api/v1/organisations/console-api-org/documents?filename=a.txt", { cookie: dpoCookie, body: "hello", contentType: "text/plain" });
    assert.equal(deliver.status, 403);
    assert.equal((await consoleRequest(stack, "GET", "/api/v1/console/organisations", { cookie: dpoCookie })).status, 403);
  });

  it("refuses a clerk (no role) with a clear reason, no session, and an audit entry", async () => {
    const res = await signIn(stack, await openIdToken(stack.access, clerk));
    assert.equal(res.status, 403);
    assert.equal((res.body as { errcode: string }).errcode, "KUVERT_NOT_STAFF");
    assert.match((res.body as { error: string }).error, /holds no role in Kuvert/);
    assert.equal(res.cookie, undefined);
    const rows = await db.query("SELECT 1 FROM console_sessions WHERE user_id = $1", [clerk.userId]);
    assert.equal(rows.rowCount, 0);
    assert.ok((await auditRows("console.sign-in")).some((r) => r.actor === clerk.userId && r.outcome === "refused"));
  });

  it("refuses forged and foreign OpenID tokens, and a sign-in without the console header", async () => {
    const forged = await signIn(stack, { access_token: "forged-token-123", matrix_server_name: serverName, token_type: "Bearer", expires_in: 3600 });
    assert.equal(forged.status, 401);
    assert.equal((forged.body as { errcode: string }).errcode, "KUVERT_SIGN_IN_FAILED");
    const real = await openIdToken(stack.access, admin);
    const foreign = await signIn(stack, { ...real, matrix_server_name: "evil.example" });
    assert.equal(foreign.status, 401);
    assert.match((foreign.body as { error: string }).error, new RegExp(`only accounts of ${testServerPattern()}`));
    const noHeader = await signIn(stack, real, { header: false });
    assert.equal(noHeader.status, 403);
    assert.equal((noHeader.body as { errcode: string }).errcode, "KUVERT_CONSOLE_HEADER_MISSING");
    const malformed = await signIn(stack, { token: "x" });
    assert.equal(malformed.status, 400);
    const failed = (await auditRows("console.sign-in")).filter((r) => r.outcome === "failed");
    assert.ok(failed.length >= 2, "failed sign-ins are not audited");
    assert.ok(failed.every((r) => r.actor === "anonymous" && typeof r.details.reason === "string"));
  });

  it("ends a session on sign-out", async () => {
    const cookie = await session(admin);
    const out = await consoleRequest<{ ended: boolean }>(stack, "DELETE", "/api/v1/session", { cookie });
    assert.equal(out.status, 200);
    assert.equal(out.body.ended, true);
    assert.match(out.headers.get("set-cookie")!, /kuvert_session=; .*Max-Age=0/);
    const after = await consoleRequest(stack, "GET", "/api/v1/organisations", { cookie });
    assert.equal(after.status, 401);
    assert.ok((await auditRows("console.sign-out")).some((r) => r.actor === admin.userId));
  });

  it("ends a session after the idle time and after the longest lifetime", async () => {
    const idle = await session(admin);
    const idleId = (await db.query<{ id_hash: string }>("SELECT id_hash FROM console_sessions ORDER BY created_at DESC LIMIT 1")).rows[0]!.id_hash;
    assert.equal((await consoleRequest(stack, "GET", "/api/v1/organisations", { cookie: idle })).status, 200);
    await db.query("UPDATE console_sessions SET last_seen_at = now() - interval '6 minutes' WHERE id_hash = $1", [idleId]);
    const me = await consoleRequest<{ signedIn: boolean; ended?: boolean }>(stack, "GET", "/api/v1/session", { cookie: idle });
    assert.deepEqual(me.body, { signedIn: false, ended: true });
    assert.equal((await consoleRequest(stack, "GET", "/api/v1/organisations", { cookie: idle })).status, 401);

    const old = await session(admin);
    await db.query("UPDATE console_sessions SET expires_at = now() - interval '1 second' WHERE id_hash = (SELECT id_hash FROM console_sessions ORDER BY created_at DESC LIMIT 1)");
    const res = await consoleRequest<{ errcode: string }>(stack, "GET", "/api/v1/organisations", { cookie: old });
    assert.equal(res.status, 401);
    assert.equal(res.body.errcode, "KUVERT_SESSION_EXPIRED");

    // A request within the idle time keeps the session alive.
    const active = await session(admin);
    await db.query("UPDATE console_sessions SET last_seen_at = now() - interval '4 minutes' WHERE id_hash = (SELECT id_hash FROM console_sessions ORDER BY created_at DESC LIMIT 1)");
    assert.equal((await consoleRequest(stack, "GET", "/api/v1/organisations", { cookie: active })).status, 200);
    const seen = await db.query<{ fresh: boolean }>("SELECT last_seen_at > now() - interval '1 minute' AS fresh FROM console_sessions ORDER BY created_at DESC LIMIT 1");
    assert.equal(seen.rows[0]!.fresh, true);

    // The page's own polling does not keep a session alive: only what the person does.
    await db.query("UPDATE console_sessions SET last_seen_at = now() - interval '4 minutes' WHERE id_hash = (SELECT id_hash FROM console_sessions ORDER BY created_at DESC LIMIT 1)");
    const polled = await fetch(`${stack.publicUrl}/api/v1/organisations`, { headers: { cookie: active!, "x-kuvert-background": "1" } });
    assert.equal(polled.status, 200, "a poll within the idle time is answered");
    const stale = await db.query<{ fresh: boolean }>("SELECT last_seen_at > now() - interval '1 minute' AS fresh FROM console_sessions ORDER BY created_at DESC LIMIT 1");
    assert.equal(stale.rows[0]!.fresh, false, "a poll counted as activity");
  });

  it("lists, filters, pages, exports and verifies the audit log", async () => {
    const cookie = await session(dpo);
    const filtered = await consoleRequest<{ entries: AuditEntry[]; next: string | null }>(stack, "GET", `/api/v1/audit?actor=${encodeURIComponent(admin.userId)}&action=organisation.*&organisation=console-api-org`, { cookie });
    assert.equal(filtered.status, 200);
    assert.ok(filtered.body.entries.length >= 1);
    assert.ok(filtered.body.entries.every((e) => e.actor === admin.userId && e.action.startsWith("organisation.") && e.organisationId === "console-api-org"));
    const page1 = await consoleRequest<{ entries: AuditEntry[]; next: string }>(stack, "GET", "/api/v1/audit?limit=2", { cookie });
    assert.equal(page1.body.entries.length, 2);
    assert.ok(Number(page1.body.entries[0]!.seq) > Number(page1.body.entries[1]!.seq), "newest first");
    const page2 = await consoleRequest<{ entries: AuditEntry[] }>(stack, "GET", `/api/v1/audit?limit=2&before=${page1.body.next}`, { cookie });
    assert.ok(Number(page2.body.entries[0]!.seq) < Number(page1.body.entries[1]!.seq));
    const future = await consoleRequest<{ entries: AuditEntry[] }>(stack, "GET", "/api/v1/audit?from=2099-01-01", { cookie });
    assert.deepEqual(future.body.entries, []);
    const bad = await consoleRequest<{ errcode: string }>(stack, "GET", "/api/v1/audit?from=yesterday", { cookie });
    assert.equal(bad.status, 400);

    const csv = await consoleRequest<string>(stack, "GET", "/api/v1/audit/export?format=csv", { cookie });
    assert.equal(csv.status, 200);
    assert.match(csv.headers.get("content-disposition")!, /attachment; filename="kuvert-audit-\d{4}-\d{2}-\d{2}\.csv"/);
    const lines = csv.body.trim().split("\n");
    assert.equal(lines[0], "seq,at,actor,action,organisation_id,object,outcome,details,prev_hash,hash");
    assert.ok(lines.some((l) => l.includes('"organisation.created"')));
    assert.ok((await auditRows("audit.exported")).some((r) => r.actor === dpo.userId));

    const verified = await consoleRequest<{ ok: boolean; rows: number }>(stack, "POST", "/api/v1/audit/verify", { cookie });
    assert.equal(verified.status, 200);
    assert.equal(verified.body.ok, true);
    assert.ok(verified.body.rows > 5);
    assert.ok((await auditRows("audit.verified")).some((r) => r.actor === dpo.userId && r.details.intact === true));
  });

  it("shows readiness and queue depths, and sends a dead e-mail again", async () => {
    const cookie = await session(admin);
    const status = await consoleRequest<{ ready: boolean; checks: Record<string, { ok: boolean }>; queues: { queue: string; pending: number }[] }>(stack, "GET", "/api/v1/status", { cookie });
    assert.equal(status.status, 200);
    assert.deepEqual(Object.keys(status.body.checks).sort(), ["database", "homeserver", "mail", "scanner"]);
    assert.ok(status.body.checks.database!.ok);
    assert.deepEqual(status.body.queues.map((q) => q.queue).sort(), ["accounts", "batches", "calls", "circular_deliveries", "documents", "encrypted_sends", "inbound_events", "mail", "room_sync"]);

    // An e-mail given up earlier (as the outbox leaves it after its last attempt).
    const { rows } = await db.query<{ id: string }>(
      `INSERT INTO mail_outbox (kind, recipient, batch_key, items, state, attempts, last_error, created_at)
       VALUES ('alert', 'retry-me@body.example', 'alert||', '[{"title":"Test alert"}]', 'dead', 5, '550 mailbox unavailable', now() - interval '1 hour') RETURNING id`,
    );
    const id = rows[0]!.id;
    const dead = await consoleRequest<{ mails: { id: string; recipient: string; lastError: string }[] }>(stack, "GET", "/api/v1/mail/dead", { cookie });
    assert.ok(dead.body.mails.some((m) => m.id === id && m.recipient === "retry-me@body.example" && m.lastError.includes("550")));
    const before = stack.smtp.messages.length;
    const retried = await consoleRequest<{ state: string; notifications: number }>(stack, "POST", `/api/v1/mail/${id}/retry`, { cookie });
    assert.equal(retried.status, 200);
    assert.deepEqual(retried.body, { id, state: "pending", notifications: 1 });
    await waitFor("the retried e-mail to be sent", async () => (await db.query<{ state: string }>("SELECT state FROM mail_outbox WHERE id = $1", [id])).rows[0]!.state === "sent");
    assert.ok(stack.smtp.messages.length > before);
    const again = await consoleRequest<{ errcode: string }>(stack, "POST", `/api/v1/mail/${id}/retry`, { cookie });
    assert.equal(again.status, 404, "an e-mail no longer dead cannot be retried");
    assert.ok((await auditRows("mail.retried")).some((r) => r.actor === admin.userId));
  });

  it("previews a CSV import: what each row would create, change or refuse, changing nothing", async () => {
    const cookie = await session(admin);
    const csv = "id,name,tags,clerks\nconsole-api-org,Console API Org renamed,schools north,anna@example.org\nbrand-new,Brand New,,\nBAD ID,x,,\n";
    const res = await consoleRequest<{ dryRun: boolean; rows: { line: number; outcome: string; changes?: Record<string, unknown>; errcode?: string }[]; summary: Record<string, number> }>(stack, "POST", "/api/v1/organisations/import?dryRun=true", {
      cookie,
      body: csv,
      contentType: "text/csv",
    });
    assert.equal(res.status, 200);
    const [changed, created, bad] = res.body.rows;
    assert.equal(changed!.outcome, "updated");
    assert.deepEqual(changed!.changes, { name: { from: "Console API Org", to: "Console API Org renamed" }, tagsAdded: ["north"], clerksAdded: ["anna@example.org"] });
    assert.equal(created!.outcome, "created");
    assert.equal(bad!.outcome, "error");
    assert.deepEqual(res.body.summary, { created: 1, updated: 1, unchanged: 0, error: 1 });
    assert.equal((await stack.api("GET", "/api/v1/organisations/brand-new")).status, 404, "the preview changed something");
    assert.equal((await stack.api<{ name: string }>("GET", "/api/v1/organisations/console-api-org")).body.name, "Console API Org");
  });

  it("answers /console/ with a clear page until the console is built, then serves it with its own CSP", async () => {
    const missing = await fetch(`${stack.publicUrl}/console/`);
    assert.equal(missing.status, 503);
    assert.match(await missing.text(), /npm run build:web/);
    mkdirSync(join(staticDir, "assets"), { recursive: true });
    writeFileSync(join(staticDir, "index.html"), "<!doctype html><title>console</title>");
    writeFileSync(join(staticDir, "assets", "index-abc123.js"), "console.log(1)");
    const page = await fetch(`${stack.publicUrl}/console/`);
    assert.equal(page.status, 200);
    assert.equal(page.headers.get("cache-control"), "no-cache");
    const asset = await fetch(`${stack.publicUrl}/console/assets/index-abc123.js`);
    assert.equal(asset.status, 200);
    assert.match(asset.headers.get("cache-control")!, /immutable/);
    assert.match(await page.text(), /<title>console<\/title>/);
    const csp = page.headers.get("content-security-policy")!;
    assert.match(csp, new RegExp(`connect-src 'self' ${stack.access.url}`));
    assert.match(csp, /script-src 'self'/);
    const redirect = await fetch(`${stack.publicUrl}/console`, { redirect: "manual" });
    assert.equal(redirect.status, 301);
    assert.equal(redirect.headers.get("location"), "/console/");
    const settings = (await (await fetch(`${stack.publicUrl}/console/settings.json`)).json()) as { homeserverUrl: string; serverName: string };
    assert.deepEqual(settings, { homeserverUrl: stack.access.url, serverName, language: stack.config.organisations.language, version });
  });

  it("describes the console's endpoints in the OpenAPI document", async () => {
    const doc = (await stack.api<{ paths: Record<string, Record<string, unknown>>; components: { securitySchemes: Record<string, { in?: string; name?: string }> } }>("GET", "/api/v1/openapi.json", undefined, { token: null })).body;
    for (const [path, method] of [
      ["/session", "post"],
      ["/session", "delete"],
      ["/audit", "get"],
      ["/audit/export", "get"],
      ["/audit/verify", "post"],
      ["/status", "get"],
      ["/mail/dead", "get"],
      ["/mail/{id}/retry", "post"],
      ["/console/organisations", "get"],
    ] as const) {
      assert.ok(doc.paths[path]?.[method], `${method.toUpperCase()} ${path} is not in the OpenAPI document`);
    }
    assert.deepEqual({ in: doc.components.securitySchemes.session?.in, name: doc.components.securitySchemes.session?.name }, { in: "cookie", name: "kuvert_session" });
  });

  it("lists a person's console sessions in their data-subject report", async () => {
    await session(dpo);
    const { subjectReport } = await import("../../appservice/audit/subject.ts");
    const report = await subjectReport(db, dpo.userId, { actor: "test" });
    const sessions = report.sections.find((s) => s.name === "consoleSessions")!;
    assert.ok(sessions.rows.length >= 1);
    assert.ok(sessions.rows.every((r) => "signedInAt" in r && "lastSeenAt" in r && "endsAt" in r));
  });

  it("rate limits failed sign-ins per address", async () => {
    let limited: { status: number; body: unknown } | undefined;
    for (let i = 0; i < 10 && !limited; i++) {
      const res = await signIn(stack, { access_token: `forged-${i}`, matrix_server_name: serverName });
      if (res.status === 429) limited = res;
      else assert.equal(res.status, 401);
    }
    assert.ok(limited, "ten failed sign-ins in a row were not limited");
    assert.equal((limited.body as { errcode: string }).errcode, "KUVERT_RATE_LIMITED");
  });
});
