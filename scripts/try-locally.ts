// Runs Kuvert on this machine to try it: the embedded database (PGlite) in data/local/, the test
// homeserver from test/homeserver as a local stand-in for Synapse (no Synapse can be installed
// without Docker), Debian's clamd with the tests' tiny signature database (it knows only the EICAR
// test file) and an SMTP catcher that prints what Kuvert sends. A real deployment uses
// docker-compose.yml (deploy/README.md).
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { stringify } from "yaml";
import { loadConfig } from "../appservice/config/load.ts";
import { openDatabase } from "../appservice/db/database.ts";
import { migrate } from "../appservice/db/migrate.ts";
import { Kuvert } from "../appservice/kuvert.ts";
import { buildRegistration, readRegistration, writeRegistration } from "../appservice/matrix/registration.ts";
import { createToken } from "../appservice/tokens/tokens.ts";
import { TestHomeserver } from "../test/homeserver/index.ts";
import { startClamd } from "../test/support/clamd.ts";
import { startSmtp } from "../test/support/smtp.ts";

const dir = join(import.meta.dirname, "..", "data", "local");
const hsPort = Number(process.env.KUVERT_TRY_HOMESERVER_PORT ?? 8448);
const publicPort = Number(process.env.KUVERT_TRY_PORT ?? 8080);
const asPort = Number(process.env.KUVERT_TRY_APPSERVICE_PORT ?? 9993);
mkdirSync(dir, { recursive: true });
const configFile = join(dir, "config.yaml");
const registrationFile = join(dir, "registration.yaml");
const serverName = "kuvert.localhost";

if (!existsSync(configFile)) {
  writeFileSync(
    configFile,
    stringify({
      homeserver: { url: `http://127.0.0.1:${hsPort}`, domain: serverName },
      appservice: { registrationFile, url: `http://127.0.0.1:${asPort}`, listener: { port: asPort } },
      publicApi: { baseUrl: `http://127.0.0.1:${publicPort}`, listener: { port: publicPort } },
      database: { embeddedDir: join(dir, "db") },
      staff: [{ userId: `@staff:${serverName}`, roles: ["admin"] }],
      organisations: { language: "en" },
    }),
  );
}
const [clamd, smtp] = await Promise.all([startClamd(), startSmtp()]);
// The scanner and the mail catcher get new ports each start, so they are set here, not in the file.
const fileConfig = loadConfig(configFile);
const config = {
  ...fileConfig,
  documents: { ...fileConfig.documents, stagingDir: join(dir, "staging") },
  scanning: { ...fileConfig.scanning, host: clamd.host, port: clamd.port },
  // A short combining window, so that the e-mail shows up here soon after a delivery.
  mail: { ...fileConfig.mail, smtp: { ...fileConfig.mail.smtp, host: smtp.host, port: smtp.port }, staffMailbox: "staff@kuvert.localhost", combineWindowSeconds: 5 },
};
if (!existsSync(registrationFile)) writeRegistration(registrationFile, buildRegistration(config), false);
const registration = readRegistration(registrationFile);

const tokenFile = join(dir, "admin-token");
if (!existsSync(tokenFile)) {
  const db = await openDatabase(config.database);
  await migrate(db);
  writeFileSync(tokenFile, await createToken(db, "local-admin", ["admin"], "try-locally"), { mode: 0o600 });
  await db.close();
}
const adminToken = readFileSync(tokenFile, "utf8").trim();

const hs = new TestHomeserver({ serverName, registrations: [registration], port: hsPort });
await hs.start();
const staff = await hs.createUser("staff", "staff-password", { displayName: "Staff" });
const clerk = await hs.createUser("anna", "anna-password", { displayName: "Anna (clerk)" });
const kuvert = await Kuvert.start(config, { registration });

process.stdout.write(`
Kuvert is running (embedded database in ${dir}; a local stand-in homeserver, not Synapse;
clamd with test signatures only; e-mails are caught and printed here, not sent).

  Public API     http://127.0.0.1:${kuvert.publicPort}   (OpenAPI: /api/v1/openapi.json)
  Staff console  http://127.0.0.1:${kuvert.publicPort}/console/   (sign in as staff / staff-password)
  Admin token    ${adminToken}
  Homeserver     ${hs.url}   users ${staff.userId} / staff-password, ${clerk.userId} / anna-password

Create an organisation with a clerk:
  curl -H "Authorization: Bearer ${adminToken}" -H "Content-Type: application/json" \\
    -d '{"id":"musterstadt","name":"Gemeinde Musterstadt","clerks":[{"matrixId":"${clerk.userId}"}]}' \\
    http://127.0.0.1:${kuvert.publicPort}/api/v1/organisations

Deliver a document to it:
  curl -H "Authorization: Bearer ${adminToken}" -H "Content-Type: application/pdf" --data-binary @some.pdf \\
    "http://127.0.0.1:${kuvert.publicPort}/api/v1/organisations/musterstadt/documents?filename=some.pdf"

Stop with Ctrl-C.
`);

let printed = 0;
setInterval(() => {
  for (const mail of smtp.messages.slice(printed)) {
    const to = mail.to && "text" in mail.to ? mail.to.text : "?";
    process.stdout.write(`\n[e-mail to ${to}] ${mail.subject ?? ""}\n${mail.text ?? ""}\n`);
  }
  printed = smtp.messages.length;
}, 1000).unref();

let stopping = false;
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    if (stopping) process.exit(1);
    stopping = true;
    void kuvert
      .stop()
      .then(() => Promise.all([hs.stop(), clamd.stop(), smtp.stop()]))
      .then(() => process.exit(0));
  });
}
