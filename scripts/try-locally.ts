// Runs Kuvert on this machine to try it: the embedded database (PGlite) in data/local/,
// and the test homeserver from test/homeserver as a local stand-in for Synapse (no Synapse
// can be installed without Docker). A real deployment uses docker-compose.yml (deploy/README.md).
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
const config = loadConfig(configFile);
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
Kuvert is running (embedded database in ${dir}; a local stand-in homeserver, not Synapse).

  Public API     http://127.0.0.1:${kuvert.publicPort}   (OpenAPI: /api/v1/openapi.json)
  Admin token    ${adminToken}
  Homeserver     ${hs.url}   users ${staff.userId} / staff-password, ${clerk.userId} / anna-password

Create an organisation with a clerk:
  curl -H "Authorization: Bearer ${adminToken}" -H "Content-Type: application/json" \\
    -d '{"id":"musterstadt","name":"Gemeinde Musterstadt","clerks":[{"matrixId":"${clerk.userId}"}]}' \\
    http://127.0.0.1:${kuvert.publicPort}/api/v1/organisations

Stop with Ctrl-C.
`);

let stopping = false;
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    if (stopping) process.exit(1);
    stopping = true;
    void kuvert
      .stop()
      .then(() => hs.stop())
      .then(() => process.exit(0));
  });
}
