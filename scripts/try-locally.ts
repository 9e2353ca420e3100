// Runs Kuvert on this machine to try it (scripts/quickstart.sh; README, "Quick start"): the
// embedded database (PGlite) in data/local/, the test homeserver (@kuvert/test-homeserver) as a local
// stand-in for Synapse (no Synapse can be installed without Docker), Debian's clamd with the
// tests' tiny signature database (it knows only the EICAR test file) and an SMTP catcher that
// prints what Kuvert sends. A real deployment uses docker-compose.yml (deploy/README.md).
//
// The stand-in homeserver keeps nothing when stopped, so Kuvert's database starts afresh on each
// start too (data/local/config.yaml is kept: edit it to try settings).
import { createWriteStream, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { parseArgs } from "node:util";
import { stringify } from "yaml";
import { loadConfig } from "../appservice/config/load.ts";
import { openDatabase } from "../appservice/db/database.ts";
import { migrate } from "../appservice/db/migrate.ts";
import { Kuvert } from "../appservice/kuvert.ts";
import { buildRegistration, writeRegistration } from "../appservice/matrix/registration.ts";
import { createToken } from "../appservice/tokens/tokens.ts";
import { TestHomeserver } from "@kuvert/test-homeserver";
import { startClamd, type Clamd } from "../test/support/clamd.ts";
import { startSmtp, type SmtpServer } from "../test/support/smtp.ts";
import { choosePort, PortError } from "./tour/ports.ts";
import { printMails, watchRooms } from "./tour/watch.ts";

const usage = `Usage: scripts/quickstart.sh [options]   (or: node scripts/try-locally.ts [options])

  --port <port>             public API and staff console (default 8080, or the next free one)
  --homeserver-port <port>  the local stand-in homeserver (default 8448, or the next free one)
  --appservice-port <port>  Kuvert's application service listener (default 9993, or the next free one)
  --metrics-port <port>     Prometheus metrics (default 9464, or the next free one)
  -h, --help                this text

The same as environment variables: KUVERT_TRY_PORT, KUVERT_TRY_HOMESERVER_PORT,
KUVERT_TRY_APPSERVICE_PORT, KUVERT_TRY_METRICS_PORT (an option wins). A port chosen this way must be free.
`;

const write = (text: string) => process.stdout.write(text);
const root = join(import.meta.dirname, "..");
const dir = join(root, "data", "local");
const serverName = "kuvert.localhost";
const samplePdf = join(import.meta.dirname, "tour", "sample-notice.pdf");

let args: { port?: string | undefined; "homeserver-port"?: string | undefined; "appservice-port"?: string | undefined; "metrics-port"?: string | undefined; help?: boolean | undefined };
try {
  args = parseArgs({
    options: { port: { type: "string" }, "homeserver-port": { type: "string" }, "appservice-port": { type: "string" }, "metrics-port": { type: "string" }, help: { type: "boolean", short: "h" } },
  }).values;
} catch (err) {
  process.stderr.write(`${(err as Error).message}\n\n${usage}`);
  process.exit(2);
}
if (args.help) {
  write(usage);
  process.exit(0);
}

const cleanups: (() => Promise<unknown> | unknown)[] = [];
async function cleanUp(): Promise<void> {
  for (const fn of cleanups.splice(0).reverse()) await Promise.resolve(fn()).catch(() => undefined);
}

/** One quick start per checkout: a second would wipe the first one's database (data/local/quickstart.pid). */
function holdLock(): void {
  const pidFile = join(dir, "quickstart.pid");
  const other = existsSync(pidFile) ? Number(readFileSync(pidFile, "utf8")) : 0;
  if (other > 0 && other !== process.pid) {
    let alive = true;
    try {
      process.kill(other, 0);
    } catch {
      alive = false;
    }
    if (alive) throw new QuickstartError(`The quick start is already running in this checkout (process ${other}); stop it first (Ctrl-C in its terminal).`);
  }
  writeFileSync(pidFile, String(process.pid));
  cleanups.push(() => rmSync(pidFile, { force: true }));
}

class QuickstartError extends Error {}

async function main(): Promise<void> {
  mkdirSync(dir, { recursive: true });
  holdLock();
  const notes: string[] = [];
  const note = (line: string) => notes.push(line);
  const publicPort = await choosePort({ what: "public API and staff console", option: "--port", env: "KUVERT_TRY_PORT", fallback: 8080 }, args.port, [], note);
  const hsPort = await choosePort({ what: "stand-in homeserver", option: "--homeserver-port", env: "KUVERT_TRY_HOMESERVER_PORT", fallback: 8448 }, args["homeserver-port"], [publicPort], note);
  const asPort = await choosePort({ what: "application service listener", option: "--appservice-port", env: "KUVERT_TRY_APPSERVICE_PORT", fallback: 9993 }, args["appservice-port"], [publicPort, hsPort], note);
  const metricsPort = await choosePort({ what: "Prometheus metrics", option: "--metrics-port", env: "KUVERT_TRY_METRICS_PORT", fallback: 9464 }, args["metrics-port"], [publicPort, hsPort, asPort], note);

  // Settings to try live in data/local/config.yaml (written once, then yours to edit); the ports,
  // the scanner and the mail catcher are set at each start, so the options above always apply.
  const configFile = join(dir, "config.yaml");
  if (!existsSync(configFile)) {
    writeFileSync(
      configFile,
      `# Kuvert's configuration for scripts/quickstart.sh (every key: config.sample.yaml). Ports, homeserver,\n` +
        `# scanner and mail server are set by the quick start at each start (scripts/quickstart.sh --help).\n` +
        stringify({
          staff: [{ userId: `@staff:${serverName}`, roles: ["admin"] }],
          organisations: { language: "en" },
          mail: { staffMailbox: "staff@kuvert.localhost", combineWindowSeconds: 5 },
        }),
    );
  }
  for (const stale of ["db", "staging", "admin-token", "registration.yaml"]) rmSync(join(dir, stale), { recursive: true, force: true });

  const clamd: Clamd = await startClamd();
  cleanups.push(() => clamd.stop());
  const smtp: SmtpServer = await startSmtp();
  cleanups.push(() => smtp.stop());

  const fileConfig = loadConfig(configFile);
  const config = {
    ...fileConfig,
    homeserver: { ...fileConfig.homeserver, url: `http://127.0.0.1:${hsPort}`, domain: serverName },
    appservice: {
      ...fileConfig.appservice,
      registrationFile: join(dir, "registration.yaml"),
      url: `http://127.0.0.1:${asPort}`,
      listener: { ...fileConfig.appservice.listener, port: asPort },
    },
    publicApi: { ...fileConfig.publicApi, baseUrl: `http://127.0.0.1:${publicPort}`, listener: { ...fileConfig.publicApi.listener, port: publicPort } },
    metrics: { ...fileConfig.metrics, listener: { ...fileConfig.metrics.listener, port: metricsPort } },
    database: { ...fileConfig.database, embeddedDir: join(dir, "db") },
    documents: { ...fileConfig.documents, stagingDir: join(dir, "staging") },
    scanning: { ...fileConfig.scanning, host: clamd.host, port: clamd.port },
    mail: { ...fileConfig.mail, smtp: { ...fileConfig.mail.smtp, host: smtp.host, port: smtp.port } },
  };
  const registration = buildRegistration(config);
  writeRegistration(config.appservice.registrationFile, registration, true);

  const db = await openDatabase(config.database);
  await migrate(db);
  const adminToken = await createToken(db, "local-admin", ["admin"], "try-locally");
  await db.close();
  writeFileSync(join(dir, "admin-token"), adminToken, { mode: 0o600 });

  const hs = new TestHomeserver({ serverName, registrations: [registration], port: hsPort });
  await hs.start();
  cleanups.push(() => hs.stop());
  const staff = await hs.createUser("staff", "staff-password", { displayName: "Staff" });
  const anna = await hs.createUser("anna", "anna-password", { displayName: "Anna (clerk)" });

  const logFile = join(dir, "kuvert.log");
  const logs = createWriteStream(logFile, { flags: "w" });
  cleanups.push(() => new Promise((resolve) => logs.end(resolve)));
  const kuvert = await Kuvert.start(config, { registration, logDestination: logs });
  cleanups.push(() => kuvert.stop());

  const api = `http://127.0.0.1:${kuvert.publicPort}`;
  const language = config.organisations.language;
  for (const line of notes) write(`${line}\n`);
  write(`
Kuvert is ready (embedded database in ${relative(process.cwd(), dir) || dir}, started afresh; a local
stand-in homeserver, not Synapse; clamd with test signatures only; e-mails are caught and
printed here, not sent; Kuvert's own log: ${relative(process.cwd(), logFile)}).

  Public API     ${api}   (OpenAPI: ${api}/api/v1/openapi.json)
  Metrics        http://127.0.0.1:${metricsPort}/metrics
  Admin token    ${adminToken}
  Homeserver     ${hs.url}   ${staff.userId} / staff-password, ${anna.userId} / anna-password
  Language       ${language} (organisations.language in ${relative(process.cwd(), configFile)}: room texts and e-mails)

A tour, in a second terminal (what happens appears here):

1. Create an organisation whose clerk Anna has a Matrix account and an e-mail address. Kuvert
   makes its room and invites her; she accepts, as she would in Element:
  curl -H "Authorization: Bearer ${adminToken}" -H "Content-Type: application/json" \\
    -d '{"id":"musterstadt","name":"Gemeinde Musterstadt","clerks":[{"name":"Anna","email":"anna@musterstadt.example","matrixId":"${anna.userId}"}]}' \\
    ${api}/api/v1/organisations

2. Deliver the sample PDF that comes with Kuvert. It is scanned, posted in the room (shown
   here as Anna sees it), and Anna gets an e-mail that names its kind and reference, never
   its content (shown here within a few seconds):
  curl -H "Authorization: Bearer ${adminToken}" -H "Content-Type: application/pdf" --data-binary @${samplePdf} \\
    "${api}/api/v1/organisations/musterstadt/documents?filename=sample-notice.pdf&kind=Notice&reference=QS-2026-001"

3. Open the staff console and sign in as staff / staff-password (homeserver ${hs.url}):
  ${api}/console/
   It shows the organisation and its room; the audit log shows the delivery.

Stop with Ctrl-C.
`);

  const stopMails = printMails(smtp, write);
  cleanups.push(stopMails);
  const watcher = watchRooms(hs.url, { ...anna, name: "Anna" }, write);
  cleanups.push(() => watcher.stop());

  let stopping = false;
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.on(signal, () => {
      if (stopping) process.exit(1);
      stopping = true;
      write("\nStopping Kuvert …\n");
      void cleanUp().then(() => process.exit(0));
    });
  }
}

try {
  await main();
} catch (err) {
  await cleanUp();
  if (err instanceof PortError || err instanceof QuickstartError) {
    process.stderr.write(`${err.message}\n`);
  } else {
    const e = err as NodeJS.ErrnoException & { port?: number };
    // A listener that lost a race for its port after the check above.
    process.stderr.write(e.code === "EADDRINUSE" ? `A port Kuvert needs was taken meanwhile (${e.message}); start again, or choose ports with --port, --homeserver-port, --appservice-port, --metrics-port.\n` : `The quick start failed: ${e.stack ?? e.message}\n`);
  }
  process.exit(1);
}
