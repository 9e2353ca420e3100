// Clerk accounts Kuvert creates on the homeserver: the password letter (read back with poppler's
// pdftotext), the sign-in e-mail, resets, bad input, deactivation.
import assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { stringify } from "yaml";
import { after, before, describe, it } from "node:test";
import { createClient } from "matrix-js-sdk";
import { Accounts } from "../../appservice/accounts/service.ts";
import { eraseSubject, subjectReport } from "../../appservice/audit/subject.ts";
import { KuvertError } from "../../appservice/errors.ts";
import { pseudonym } from "../../appservice/log.ts";
import { SynapseAdmin } from "../../appservice/accounts/synapse.ts";
import { TestHomeserver } from "@kuvert/test-homeserver";
import { artifactsDir, repoRoot, startStack, testServerPattern, waitFor, type Stack } from "../support/harness.ts";
import { createAccount } from "../support/matrix.ts";
import { tempDir } from "../support/tmp.ts";

interface AccountView {
  matrixId: string;
  state: string;
  failure: string | null;
  organisations: string[];
}

const signInUrl = "https://element.body.example";

async function fetchPdf(stack: Stack, path: string, body?: unknown): Promise<{ status: number; type: string | null; pdf: Buffer; json: Record<string, unknown> | null }> {
  const res = await fetch(`${stack.publicUrl}${path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${stack.adminToken}`, ...(body ? { "content-type": "application/json" } : {}) },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  const buf = Buffer.from(await res.arrayBuffer());
  const type = res.headers.get("content-type");
  return { status: res.status, type, pdf: buf, json: type?.startsWith("application/json") ? (JSON.parse(buf.toString("utf8")) as Record<string, unknown>) : null };
}

function pdfText(pdf: Buffer, name: string): string {
  const dir = join(artifactsDir, "letters");
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${name}.pdf`);
  writeFileSync(file, pdf);
  return execFileSync("pdftotext", ["-layout", file, "-"], { encoding: "utf8" });
}

function passwordIn(text: string, label = "Anfangspasswort"): string {
  const match = new RegExp(`${label}\\s+(\\S+)`).exec(text);
  assert.ok(match, `the letter names the ${label}:\n${text}`);
  return match[1]!;
}

async function login(stack: Stack, user: string, password: string): Promise<{ ok: true; userId: string } | { ok: false; errcode: string }> {
  const client = createClient({ baseUrl: stack.access.url });
  try {
    const res = await client.loginRequest({ type: "m.login.password", identifier: { type: "m.id.user", user }, password });
    return { ok: true, userId: res.user_id };
  } catch (err) {
    return { ok: false, errcode: (err as { errcode?: string }).errcode ?? String(err) };
  } finally {
    client.stopClient();
  }
}

describe("clerk accounts", () => {
  let stack: Stack;
  const secrets: string[] = [];

  before(async () => {
    stack = await startStack({
      name: "accounts",
      configure: (raw) => {
        raw.accounts = { signInUrl, keyBackup: true };
        raw.letters = { sender: { name: "Versorgungskasse Musterland", address: ["Musterstraße 1", "12345 Musterstadt"], contact: "Fragen: 0123 456789 · service@body.example" } };
      },
    });
  });
  after(() => stack.stop());

  /** A user ID on the suite's homeserver. */
  const mx = (localpart: string) => `@${localpart}:${stack.access.serverName}`;

  async function account(matrixId: string, state: string): Promise<AccountView> {
    let found: AccountView | undefined;
    await waitFor(`${matrixId} to be ${state}`, async () => {
      const res = await stack.api<AccountView>("GET", `/api/v1/accounts/${encodeURIComponent(matrixId)}`);
      found = res.body;
      return res.status === 200 && res.body.state === state;
    });
    return found!;
  }

  it("creates the account, invites it, sends a letter whose password signs in and an e-mail without it", async () => {
    const res = await stack.api<{ organisation: { clerks: { matrixId: string }[] } }>("POST", "/api/v1/organisations", {
      id: "musterstadt",
      name: "Gemeinde Musterstadt",
      clerks: [{ name: "Jörg Müller-Weiß", email: "joerg@musterstadt.example", createAccount: true }],
    });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    const matrixId = mx("joerg.mueller-weiss");
    assert.equal(res.body.organisation.clerks[0]?.matrixId, matrixId, "the username is derived from the name, folded to ASCII");
    const acc = await account(matrixId, "letter_ready");
    assert.deepEqual(acc.organisations, ["musterstadt"]);

    const roomId = await stack.roomOf("musterstadt");
    await waitFor("the new clerk to be invited", async () => (await stack.roomState(roomId)).some((e) => e.type === "m.room.member" && e.state_key === matrixId && e.content.membership === "invite"));

    const letter = await fetchPdf(stack, `/api/v1/organisations/musterstadt/clerks/${encodeURIComponent(matrixId)}/letter`);
    assert.equal(letter.status, 200, letter.json ? JSON.stringify(letter.json) : "");
    assert.equal(letter.type, "application/pdf");
    const text = pdfText(letter.pdf, "joerg");
    assert.ok(text.includes(matrixId), "the letter names the full Matrix ID");
    assert.match(text, /Versorgungskasse Musterland/);
    assert.match(text, /Jörg Müller-Weiß/, "umlauts survive in the embedded font");
    assert.match(text, /Gemeinde Musterstadt/);
    assert.match(text, /element\.body\.example/);
    assert.match(text, /Schlüsselsicherung/, "key backup is among the first steps when configured");
    const password = passwordIn(text);
    secrets.push(password);
    assert.ok(password.length >= 16, `password ${password.length} characters`);
    const ok = await login(stack, matrixId, password);
    assert.deepEqual(ok, { ok: true, userId: matrixId });
    execFileSync("pdftoppm", ["-png", "-r", "60", "-singlefile", join(artifactsDir, "letters", "joerg.pdf"), join(artifactsDir, "letters", "joerg")]);

    const mails = await stack.smtp.waitForMessages(1);
    const mail = mails.find((m) => (m.to as { text: string } | undefined)?.text.includes("joerg@musterstadt.example"));
    assert.ok(mail, "the clerk got an e-mail");
    assert.match(mail.subject ?? "", /Zugang/);
    assert.ok(mail.text?.includes(signInUrl), "the e-mail links to the sign-in page");
    assert.ok(mail.text?.includes(matrixId), "the e-mail names the username");
    assert.ok(!mail.text?.includes(password) && !String(mail.html).includes(password), "the e-mail does not carry the password");
  });

  it("refuses a second letter until the password is reset; then the new password works and the old does not", async () => {
    const matrixId = mx("joerg.mueller-weiss");
    const path = `/api/v1/organisations/musterstadt/clerks/${encodeURIComponent(matrixId)}`;
    const again = await fetchPdf(stack, `${path}/letter`);
    assert.equal(again.status, 409);
    assert.equal(again.json?.errcode, "KUVERT_LETTER_ALREADY_ISSUED");

    const reset = await stack.api<{ account: AccountView }>("POST", `${path}/password-reset`);
    assert.equal(reset.status, 200, JSON.stringify(reset.body));
    assert.equal(reset.body.account.state, "letter_ready");
    const old = await login(stack, matrixId, secrets[0]!);
    assert.deepEqual(old, { ok: false, errcode: "M_FORBIDDEN" }, "the old password stops working at the reset");

    const letter = await fetchPdf(stack, `${path}/letter?language=en`);
    assert.equal(letter.status, 200);
    const text = pdfText(letter.pdf, "joerg-reset");
    assert.match(text, /Initial password/);
    assert.match(text, /has reset the password/);
    const fresh = passwordIn(text, "Initial password");
    secrets.push(fresh);
    assert.notEqual(fresh, secrets[0]);
    assert.deepEqual(await login(stack, matrixId, fresh), { ok: true, userId: matrixId });
    assert.equal((await fetchPdf(stack, `${path}/letter`)).status, 409, "exactly one letter per reset");

    await waitFor("the reset e-mail", () => stack.smtp.messages.some((m) => /zurückgesetzt/.test(m.subject ?? "")));
    for (const m of stack.smtp.messages) for (const s of secrets) assert.ok(!m.text?.includes(s) && !String(m.html).includes(s), "no e-mail carries a password");
  });

  it("imports a CSV where one clerk's username is taken: that row fails with a reason, the others are created, and one PDF holds their letters", async () => {
    await createAccount(stack.access, "anna.beispiel", "hers-already", "Another Anna");
    const csv = [
      "id,name,clerks",
      'schule-am-see,Schule am See,"Anna Beispiel anna@see.example [account]"',
      'schule-am-berg,Schule am Berg,"Bernd Berg bernd@berg.example [account=anna.beispiel]"',
      'gemeinde-tal,Gemeinde Tal,"Carla Tal carla@tal.example [account=_carla]"',
      'gemeinde-hof,Gemeinde Hof,"Dora Hof dora@hof.example [account=dora.hof]"',
    ].join("\n");
    const res = await stack.api<{ rows: { id: string; outcome: string; errcode?: string; error?: string }[] }>("POST", "/api/v1/organisations/import", csv, { contentType: "text/csv" });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const byId = new Map(res.body.rows.map((r) => [r.id, r]));
    assert.equal(byId.get("schule-am-see")?.outcome, "created");
    assert.equal(byId.get("schule-am-berg")?.errcode, "KUVERT_USERNAME_TAKEN", JSON.stringify(byId.get("schule-am-berg")));
    assert.match(byId.get("schule-am-berg")?.error ?? "", /Bernd Berg/, "the error names the clerk");
    assert.equal(byId.get("gemeinde-tal")?.errcode, "KUVERT_USERNAME_INVALID");
    assert.equal(byId.get("gemeinde-hof")?.outcome, "created");
    assert.equal((await stack.api("GET", "/api/v1/organisations/schule-am-berg")).status, 404, "a bad row changes nothing");

    await account(mx("anna.beispiel2"), "letter_ready");
    await account(mx("dora.hof"), "letter_ready");
    const letters = await fetchPdf(stack, "/api/v1/letters", { organisations: ["schule-am-see", "gemeinde-hof", "musterstadt"] });
    assert.equal(letters.status, 200, letters.json ? JSON.stringify(letters.json) : "");
    const text = pdfText(letters.pdf, "import");
    const pages = text.split("\f").filter((p) => p.trim() !== "");
    assert.equal(pages.length, 2, "one page for each letter due (Jörg's was produced already)");
    assert.match(pages.join(""), new RegExp(`@anna\\.beispiel2:${testServerPattern()}`));
    assert.match(pages.join(""), new RegExp(`@dora\\.hof:${testServerPattern()}`));
    for (const page of pages) {
      const user = new RegExp(`@[a-z0-9.]+:${testServerPattern()}`).exec(page)![0];
      const password = passwordIn(page);
      secrets.push(password);
      assert.deepEqual(await login(stack, user, password), { ok: true, userId: user });
    }
    assert.equal((await fetchPdf(stack, "/api/v1/letters", { organisations: ["schule-am-see"] })).json?.errcode, "KUVERT_ACCOUNT_NOT_READY");
  });

  it("refuses clearly when the homeserver admin token is missing or not an admin's, creating nothing", async () => {
    const kuvert = stack.kuvert!;
    const clerk = [{ name: "Eva Probe", email: "eva@probe.example", createAccount: true }];
    const missing = new Accounts(kuvert.db, { ...kuvert.config, homeserver: { ...kuvert.config.homeserver, adminToken: undefined } });
    await assert.rejects(missing.prepare(clerk), (err: unknown) => err instanceof KuvertError && err.errcode === "KUVERT_HOMESERVER_ADMIN_UNAVAILABLE" && /adminToken/.test(err.message));
    const notAdmin = new Accounts(kuvert.db, { ...kuvert.config, homeserver: { ...kuvert.config.homeserver, adminToken: stack.staff.client.getAccessToken()! } });
    await assert.rejects(notAdmin.prepare(clerk), (err: unknown) => err instanceof KuvertError && err.errcode === "KUVERT_HOMESERVER_ADMIN_UNAVAILABLE" && /M_FORBIDDEN/.test(err.message));
    const res = await stack.api<{ errcode: string }>("POST", "/api/v1/organisations", { id: "probe", name: "Probe", clerks: [{ name: "Eva", createAccount: true }] });
    assert.equal(res.status, 400, "createAccount needs an e-mail address");
    assert.equal((await stack.api("GET", "/api/v1/organisations/probe")).status, 404);
  });

  it("deactivates the account only after confirmation, and kicks the clerk", async () => {
    const matrixId = mx("dora.hof");
    const path = `/api/v1/organisations/gemeinde-hof/clerks/${encodeURIComponent(matrixId)}`;
    const ask = await stack.api<{ errcode: string; error: string }>("DELETE", path);
    assert.equal(ask.status, 409);
    assert.equal(ask.body.errcode, "KUVERT_CONFIRMATION_REQUIRED");
    assert.match(ask.body.error, /deactivates the account/);
    assert.equal((await account(matrixId, "letter_issued")).state, "letter_issued", "nothing changed without confirmation");

    const done = await stack.api<{ accountDeactivated: string; organisation: { clerks: { status: string }[] } }>("DELETE", `${path}?confirm=true`);
    assert.equal(done.status, 200, JSON.stringify(done.body));
    assert.equal(done.body.accountDeactivated, matrixId);
    assert.equal(done.body.organisation.clerks[0]?.status, "removed");
    await account(matrixId, "deactivated");
    const roomId = await stack.roomOf("gemeinde-hof");
    await waitFor("the clerk to be out of the room", async () => (await stack.roomState(roomId)).some((e) => e.type === "m.room.member" && e.state_key === matrixId && e.content.membership === "leave"));
    const password = secrets[secrets.length - 1]!;
    const attempt = await login(stack, mx("dora.hof"), password);
    assert.equal(attempt.ok, false);
    const audit = await stack.kuvert!.db.query<{ action: string }>("SELECT action FROM audit_log WHERE object = $1 ORDER BY seq", [matrixId]);
    assert.deepEqual(
      audit.rows.map((r) => r.action).filter((a) => a.startsWith("account.")),
      ["account.requested", "account.created", "account.letter-issued", "account.deactivated"],
    );
  });

  it("lists the account in a data-subject report, and erases it only once it is deactivated", async () => {
    const db = stack.kuvert!.db;
    const dora = mx("dora.hof");
    const report = await subjectReport(db, dora, { actor: "test" });
    const accounts = report.sections.find((s) => s.name === "accounts")!;
    assert.deepEqual(
      accounts.rows.map((r) => [r.matrixId, r.email, r.state, r.letters]),
      [[dora, "dora@hof.example", "deactivated", 1]],
    );
    await waitFor("Dora's membership to be recorded as left", async () => (await db.query("SELECT 1 FROM clerks WHERE matrix_id = $1 AND membership = 'leave'", [dora])).rows.length > 0);
    const erased = await eraseSubject(db, dora, "test", pseudonym);
    assert.equal(erased.erased.find((e) => e.what.startsWith("records of homeserver accounts"))?.count, 1);
    assert.equal((await db.query("SELECT 1 FROM clerk_accounts WHERE matrix_id = $1 OR email = 'dora@hof.example' OR display_name = 'Dora Hof'", [dora])).rows.length, 0);

    const anna = mx("anna.beispiel2");
    const kept = await stack.api("DELETE", `/api/v1/organisations/schule-am-see/clerks/${encodeURIComponent(anna)}?keepAccount=true`);
    assert.equal(kept.status, 200, JSON.stringify(kept.body));
    assert.equal((await account(anna, "letter_issued")).organisations.length, 0, "the account stays, outside any organisation");
    // Erasure waits for the room to be in line: Anna's leave seen and the room's sync through (on Synapse the leave event can arrive before the sync job records itself done).
    await waitFor(
      "Anna's removal to reach the room",
      async () => (await db.query("SELECT 1 FROM clerks WHERE matrix_id = $1 AND membership = 'leave'", [anna])).rows.length > 0 && (await db.query("SELECT 1 FROM room_sync WHERE organisation_id = 'schule-am-see' AND state = 'pending'")).rows.length === 0,
    );
    await assert.rejects(eraseSubject(db, "anna@see.example", "test", pseudonym), (err: unknown) => err instanceof KuvertError && /still active: deactivate it first/.test(err.message));
  });

  it("creates accounts and letters from the command line, and deactivates only with --yes", async () => {
    const dir = tempDir("kuvert-accounts-cli-");
    writeFileSync(join(dir, "config.yaml"), stringify(stack.rawConfig));
    const kuvert = (...args: string[]) => promisify(execFile)(process.execPath, [join(repoRoot, "bin", "kuvert.js"), "--config", join(dir, "config.yaml"), ...args], { cwd: dir });
    const created = await kuvert("org", "create", "gemeinde-cli", "--name", "Gemeinde Cli", "--clerk", "Frieda Ölmann frieda@cli.example [account]");
    assert.match(created.stdout, /^created: gemeinde-cli/);
    const matrixId = mx("frieda.oelmann");
    await account(matrixId, "letter_ready");
    const out = join(dir, "letters.pdf");
    const written = await kuvert("letter", "gemeinde-cli", "-o", out);
    assert.match(written.stdout, /Wrote 1 letter/);
    const password = passwordIn(pdfText(readFileSync(out), "cli"));
    secrets.push(password);
    assert.deepEqual(await login(stack, matrixId, password), { ok: true, userId: matrixId });
    await assert.rejects(kuvert("letter", "gemeinde-cli", "frieda@cli.example", "-o", out), /KUVERT_LETTER_ALREADY_ISSUED|already produced/);
    await kuvert("account", "reset-password", "gemeinde-cli", "frieda@cli.example");
    assert.equal((await login(stack, matrixId, password)).ok, false);
    const dry = await kuvert("account", "deactivate", "gemeinde-cli", matrixId).catch((err: { stdout: string; code: number }) => err);
    assert.match(dry.stdout, /would remove .* deactivate the account/);
    assert.equal((await account(matrixId, "letter_ready")).state, "letter_ready");
    await kuvert("account", "deactivate", "gemeinde-cli", matrixId, "--yes");
    await account(matrixId, "deactivated");
    const listed = JSON.parse((await kuvert("account", "list", "--json")).stdout) as AccountView[];
    assert.equal(listed.find((a) => a.matrixId === matrixId)?.state, "deactivated");
  });

  it("adopts an account an earlier attempt made but did not record, and refuses one that existed before", async () => {
    const db = stack.kuvert!.db;
    const accounts = stack.kuvert!.services.accounts;
    const insert = async (matrixId: string, marker: string) => {
      const { rows } = await db.query<{ id: string }>("INSERT INTO clerk_accounts (matrix_id, email, display_name, organisation_id, marker, create_started_at) VALUES ($1, $2, 'Gustav Gans', 'musterstadt', $3, now()) RETURNING id", [
        matrixId,
        `${matrixId.slice(1, matrixId.indexOf(":"))}@gans.example`,
        marker,
      ]);
      return rows[0]!.id;
    };
    // As if Kuvert died after the homeserver created the account and before recording it.
    const admin = new SynapseAdmin(stack.config);
    const marker = "7a1c2d1e-0000-4000-8000-000000000001";
    const adoptedId = await insert(mx("gustav.gans"), marker);
    await admin.putUser(mx("gustav.gans"), { password: "irrelevant-and-unknown", external_ids: [{ auth_provider: "kuvert", external_id: marker }] });
    await accounts.create(adoptedId);
    const adopted = await db.query<{ state: string }>("SELECT state FROM clerk_accounts WHERE id = $1", [adoptedId]);
    assert.equal(adopted.rows[0]?.state, "letter_ready");
    const audit = await db.query<{ details: { adopted?: boolean } }>("SELECT details FROM audit_log WHERE action = 'account.created' AND object = $1", [mx("gustav.gans")]);
    assert.equal(audit.rows[0]?.details.adopted, true);

    await createAccount(stack.access, "gerda.gans", "hers", "Gerda");
    const foreignId = await insert(mx("gerda.gans"), "7a1c2d1e-0000-4000-8000-000000000002");
    await accounts.create(foreignId);
    const foreign = await db.query<{ state: string; failure: string }>("SELECT state, failure FROM clerk_accounts WHERE id = $1", [foreignId]);
    assert.equal(foreign.rows[0]?.state, "failed");
    assert.match(foreign.rows[0]!.failure, /already existed .* not made by Kuvert/);
    assert.deepEqual(await login(stack, mx("gerda.gans"), "hers"), { ok: true, userId: mx("gerda.gans") }, "the existing account is left alone");
    await waitFor("staff to be alerted by e-mail", () => stack.smtp.messages.some((m) => (m.to as { text: string } | undefined)?.text.includes("staff@body.example") && m.text?.includes(mx("gerda.gans"))));
  });

  it("describes the account endpoints in the OpenAPI document", async () => {
    const res = await stack.api<{ paths: Record<string, Record<string, { responses: Record<string, unknown> }>> }>("GET", "/api/v1/openapi.json", undefined, { token: null });
    assert.equal(res.status, 200);
    for (const path of ["/accounts", "/accounts/{matrixId}", "/organisations/{id}/clerks/{clerk}/letter", "/organisations/{id}/clerks/{clerk}/password-reset", "/letters"]) {
      assert.ok(res.body.paths[path], `${path} is described`);
    }
    assert.ok(res.body.paths["/letters"]!.post!.responses["409"]);
  });

  it("never writes a password into its log", () => {
    const log = readFileSync(join(artifactsDir, "logs", "accounts.log"), "utf8");
    assert.ok(log.includes("clerk account created"), "the log is the one Kuvert wrote");
    assert.ok(secrets.length >= 4);
    for (const s of secrets) assert.ok(!log.includes(s), "a password is in the log");
  });
});

describe("clerk accounts on an older Synapse (no username_available, no external_ids; the test homeserver imitates it)", () => {
  let hs: TestHomeserver;
  let admin: SynapseAdmin;
  before(async () => {
    hs = new TestHomeserver({ adminToken: "legacy-admin-token", legacyUserAdmin: true });
    await hs.start();
    admin = new SynapseAdmin({ homeserver: { url: hs.url, domain: hs.serverName, adminToken: "legacy-admin-token" } } as never);
  });
  after(() => hs.stop());

  it("checks usernames by asking for the user, and recognises its own account by creation time and address", async () => {
    await hs.createUser("hans.alt", "x");
    await assert.rejects(admin.usernameAvailable("hans.alt", hs.serverName), /M_USER_IN_USE/);
    assert.equal(await admin.usernameAvailable("hans.neu", hs.serverName), true);
    const startedAt = new Date(Date.now() - 500);
    const { created, user } = await admin.putUser(`@hans.neu:${hs.serverName}`, { password: "unknown-to-all", threepids: [{ medium: "email", address: "hans@neu.example" }], external_ids: [{ auth_provider: "kuvert", external_id: "m1" }] });
    assert.equal(created, true);
    assert.equal(user.external_ids, undefined, "an older Synapse does not report external ids");
    const row = { marker: "m1", email: "hans@neu.example", create_started_at: startedAt } as never;
    assert.equal(Accounts.madeByKuvert(user, row), true);
    const before = (await admin.getUser(`@hans.alt:${hs.serverName}`))!;
    assert.equal(Accounts.madeByKuvert({ ...before, creation_ts: Math.floor(startedAt.getTime() / 1000) - 3600 }, row), false, "an account older than the attempt is not Kuvert's");
  });
});
