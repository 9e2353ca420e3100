// The `kuvert` command line. The only place that writes to the console directly.
import { createWriteStream, existsSync, readFileSync } from "node:fs";
import { userInfo } from "node:os";
import { Command, Option } from "commander";
import cliProgress from "cli-progress";
import { verifyAuditLog } from "./audit/audit.ts";
import { exportAuditLog, type ExportFormat } from "./audit/export.ts";
import { ConfigError, loadConfig, parseConfig } from "./config/load.ts";
import { sampleConfig } from "./config/sample.ts";
import type { KuvertConfig } from "./config/schema.ts";
import { openDatabase, type Database } from "./db/database.ts";
import { acquireEmbeddedLock } from "./db/lock.ts";
import { migrate } from "./db/migrate.ts";
import { ErrCode, KuvertError } from "./errors.ts";
import { configureLogging } from "./log.ts";
import { apiVersion, commit, schemaVersion, version } from "./version.ts";
import { buildRegistration, RegistrationError, sampleRegistration, writeRegistration } from "./matrix/registration.ts";
import { importOrganisations, parseOrganisationsCsv } from "./organisations/csv.ts";
import { Organisations } from "./organisations/service.ts";
import type { StoredOrganisation } from "./organisations/store.ts";
import { createToken, revokeToken, scopes, type Scope } from "./tokens/tokens.ts";
import { present } from "./organisations/api.ts";
import { modules } from "./modules.ts";

const actor = `cli:${userInfo().username}`;

function configPath(opts: { config?: string }): string | undefined {
  if (opts.config) return opts.config;
  if (process.env.KUVERT_CONFIG) return process.env.KUVERT_CONFIG;
  return existsSync("config.yaml") ? "config.yaml" : undefined;
}

function config(cmd: Command): KuvertConfig {
  const cfg = loadConfig(configPath(cmd.optsWithGlobals()));
  // Command-line use: library and service logs only when something is wrong.
  configureLogging({ level: process.env.KUVERT_LOG_LEVEL ?? "warn", pseudonymKey: cfg.logging.pseudonymKey, destination: process.stderr });
  return cfg;
}

/** Opens the database (migrated first, unless the command is `migrate` itself) for one command. */
/** Organisations that can create clerk accounts (`createAccount`, `[account]` in CSV), when a module provides them. */
function organisationsWithAccounts(db: Database, cfg: KuvertConfig): Organisations {
  const provider = modules.find((m) => m.clerkAccounts);
  const accounts = provider?.clerkAccounts?.(db, cfg);
  return new Organisations(db, undefined, () => accounts);
}

async function withDatabase<T>(cfg: KuvertConfig, fn: (db: Database) => Promise<T>, migrateFirst = true): Promise<T> {
  const lock = cfg.database.url ? undefined : acquireEmbeddedLock(cfg.database.embeddedDir);
  const db = await openDatabase(cfg.database);
  try {
    if (migrateFirst) await migrate(db);
    return await fn(db);
  } finally {
    await db.close();
    lock?.release();
  }
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function printOrganisation(org: StoredOrganisation): void {
  console.log(`${org.id}  ${org.name}`);
  console.log(`  state:  ${org.state}${org.archivedAt ? ` (since ${org.archivedAt})` : ""}`);
  console.log(`  tags:   ${org.tags.join(", ") || "–"}`);
  console.log(`  room:   ${org.roomId ?? "–"} (${org.roomState})${org.roomProblem ? `\n  problem: ${org.roomProblem.replace(/\n/g, "\n           ")}` : ""}${org.powerLevelsProblem ? `\n  power levels: ${org.powerLevelsProblem}` : ""}`);
  console.log("  clerks:");
  for (const c of org.clerks) {
    const who = [c.name, c.email, c.matrixId].filter(Boolean).join("  ");
    console.log(`    ${c.status === "removed" ? "(removed) " : ""}${who}${c.matrixId ? `  [${c.membership ?? "not invited yet"}]` : ""}`);
  }
}

function clerkFromOption(spec: string): Record<string, string | boolean> {
  const clerk: Record<string, string | boolean> = {};
  const name: string[] = [];
  for (const token of spec.trim().split(/\s+/)) {
    const account = /^\[account(?:=([^\]\s]+))?\]$/i.exec(token);
    if (account) {
      clerk.createAccount = true;
      if (account[1]) clerk.username = account[1];
    } else if (token.startsWith("@")) clerk.matrixId = token;
    else if (token.includes("@")) clerk.email = token;
    else name.push(token);
  }
  if (name.length) clerk.name = name.join(" ");
  return clerk;
}

export function program(): Command {
  const cli = new Command("kuvert")
    .description("Secure document exchange for public bodies and their member organisations, on Matrix.")
    .version(`kuvert ${version} (commit ${commit()}, database schema ${schemaVersion}, API ${apiVersion})`, "-V, --version", "say which Kuvert this is: program version, commit, database schema and API version")
    .option("-c, --config <file>", "configuration file (default: $KUVERT_CONFIG or ./config.yaml)")
    .showHelpAfterError();

  const cfgCmd = cli.command("config").description("the configuration");
  cfgCmd
    .command("sample")
    .description("print a sample configuration with every key, its meaning and default")
    .action(() => {
      process.stdout.write(sampleConfig());
    });
  cfgCmd
    .command("check")
    .description("check the configuration and say what is wrong")
    .action(function (this: Command) {
      config(this);
      console.log("The configuration is valid.");
    });

  cli
    .command("generate-registration")
    .description("write the appservice registration for the homeserver (fresh random tokens)")
    .option("-o, --output <file>", "where to write it (default: appservice.registrationFile)")
    .option("--force", "replace an existing file (the homeserver must then load the new one)")
    .option("--sample", "print the sample registration (config.sample.yaml's defaults, placeholder tokens) instead")
    .action(function (this: Command, opts: { output?: string; force?: boolean; sample?: boolean }) {
      if (opts.sample) {
        process.stdout.write(sampleRegistration(parseConfig({})));
        return;
      }
      const cfg = config(this);
      const file = opts.output ?? cfg.appservice.registrationFile;
      writeRegistration(file, buildRegistration(cfg), opts.force === true);
      console.log(`Wrote ${file}. Add it to the homeserver (Synapse: app_service_config_files) and restart the homeserver.`);
    });

  cli
    .command("migrate")
    .description("bring the database schema up to date")
    .action(async function (this: Command) {
      const cfg = config(this);
      const applied = await withDatabase(cfg, migrate, false);
      console.log(applied.length ? `Applied migrations ${applied.join(", ")}.` : "The database is up to date.");
    });

  cli
    .command("start")
    .description("run Kuvert")
    .action(async function (this: Command) {
      const cfg = loadConfig(configPath(this.optsWithGlobals()));
      // Loaded here: the service pulls in the Matrix libraries, which other commands do not need.
      const { Kuvert } = await import("./kuvert.ts");
      const kuvert = await Kuvert.start(cfg);
      let signals = 0;
      const onSignal = (signal: string) => {
        signals++;
        if (signals > 1) {
          process.stderr.write(`${signal} again: exiting at once.\n`);
          process.exit(1);
        }
        kuvert.stop().then(
          () => process.exit(0),
          () => process.exit(1),
        );
      };
      process.on("SIGTERM", () => onSignal("SIGTERM"));
      process.on("SIGINT", () => onSignal("SIGINT"));
    });

  const org = cli.command("org").description("member organisations");
  org
    .command("create <id>")
    .description("create an organisation (or bring an existing one to this state)")
    .requiredOption("--name <name>", "display name")
    .option("--tag <tag>", "a tag, repeatable", collect, [])
    .option("--clerk <clerk>", 'a clerk: "Name email@example.org @user:example.org" (any of them; "[account]" or "[account=username]" with name and e-mail creates their account), repeatable', collect, [])
    .action(async function (this: Command, id: string, opts: { name: string; tag: string[]; clerk: string[] }) {
      const cfg = config(this);
      await withDatabase(cfg, async (db) => {
        const result = await organisationsWithAccounts(db, cfg).apply({ id, name: opts.name, tags: opts.tag, clerks: opts.clerk.map(clerkFromOption) }, actor);
        console.log(`${result.outcome}: ${id}${result.outcome === "unchanged" ? "" : " (Kuvert makes the room and invites the clerks)"}`);
      });
    });
  org
    .command("list")
    .description("list organisations")
    .option("--tag <tag>", "only with this tag")
    .addOption(new Option("--state <state>", "only in this state").choices(["active", "archived"]))
    .option("--json", "as JSON")
    .action(async function (this: Command, opts: { tag?: string; state?: "active" | "archived"; json?: boolean }) {
      const cfg = config(this);
      await withDatabase(cfg, async (db) => {
        const list = await new Organisations(db).list({ tag: opts.tag, state: opts.state, limit: 100_000 });
        if (opts.json) return console.log(JSON.stringify(list.map(present), null, 2));
        for (const o of list) {
          const clerks = o.clerks.filter((c) => c.status === "active").length;
          console.log(`${o.id.padEnd(30)} ${o.state.padEnd(8)} room ${o.roomState.padEnd(7)} ${String(clerks).padStart(3)} clerks  ${o.name}${o.tags.length ? `  [${o.tags.join(", ")}]` : ""}`);
        }
        console.log(`${list.length} organisation(s)`);
      });
    });
  org
    .command("show <id>")
    .description("show one organisation with its room and clerks")
    .option("--json", "as JSON")
    .action(async function (this: Command, id: string, opts: { json?: boolean }) {
      const cfg = config(this);
      await withDatabase(cfg, async (db) => {
        const o = await new Organisations(db).get(id);
        if (opts.json) console.log(JSON.stringify(present(o), null, 2));
        else printOrganisation(o);
      });
    });
  org
    .command("tag <id>")
    .description("add or remove tags of an organisation (circulars go to tags)")
    .option("--add <tag>", "a tag to add, repeatable", collect, [])
    .option("--remove <tag>", "a tag to remove, repeatable", collect, [])
    .action(async function (this: Command, id: string, opts: { add: string[]; remove: string[] }) {
      const cfg = config(this);
      await withDatabase(cfg, async (db) => {
        const organisations = new Organisations(db);
        const current = await organisations.get(id);
        const tags = [...new Set([...current.tags.filter((t) => !opts.remove.includes(t)), ...opts.add])];
        const result = await organisations.patch(id, { tags }, actor);
        console.log(`${result.outcome}: ${id}  [${result.organisation.tags.join(", ")}]`);
      });
    });
  org
    .command("archive <id>")
    .description("archive an organisation: its room becomes read-only and is kept")
    .action(async function (this: Command, id: string) {
      const cfg = config(this);
      await withDatabase(cfg, async (db) => {
        const result = await new Organisations(db).archive(id, actor);
        console.log(result.outcome === "unchanged" ? `${id} was archived already.` : `Archived ${id}.`);
      });
    });
  org
    .command("import <file>")
    .description("create or update organisations from a CSV file (columns id, name, tags, clerks)")
    .option("--dry-run", "check every row, change nothing")
    .option("--json", "print the report as JSON")
    .action(async function (this: Command, file: string, opts: { dryRun?: boolean; json?: boolean }) {
      const cfg = config(this);
      const rows = parseOrganisationsCsv(readFileSync(file, "utf8"));
      if (opts.dryRun) {
        for (const r of rows) console.log(`line ${r.line} ${r.id || "(no id)"}: ${r.error ? `error ${r.error.errcode}: ${r.error.message}` : "ok"}`);
        console.log(`${rows.filter((r) => !r.error).length} of ${rows.length} rows valid; nothing changed.`);
        return;
      }
      await withDatabase(cfg, async (db) => {
        const bar = new cliProgress.SingleBar({ format: "Importing [{bar}] {value}/{total} organisations", stream: process.stderr, noTTYOutput: true, notTTYSchedule: 1000, hideCursor: true }, cliProgress.Presets.shades_classic);
        bar.start(rows.length, 0);
        const report = await importOrganisations(db, organisationsWithAccounts(db, cfg), rows, actor, (done) => bar.update(done));
        bar.stop();
        if (opts.json) return console.log(JSON.stringify(report, null, 2));
        for (const r of report.rows) if (r.outcome === "error") console.log(`line ${r.line} ${r.id || "(no id)"}: ${r.errcode}: ${r.error}`);
        const s = report.summary;
        console.log(`${s.created} created, ${s.updated} updated, ${s.unchanged} unchanged, ${s.error} with errors.`);
        if (s.error > 0) process.exitCode = 2;
      });
    });

  const token = cli.command("token").description("API tokens for admins and back-office systems");
  token
    .command("create <name>")
    .description("make a token; it is printed once and stored only as a hash")
    .addOption(new Option("--scope <scope>", "what the token may do").choices([...scopes]).makeOptionMandatory())
    .option("--org <id>", "with --scope drop: an organisation the token may deliver to, repeatable (default: all)", collect, [])
    .action(async function (this: Command, name: string, opts: { scope: Scope; org: string[] }) {
      const cfg = config(this);
      await withDatabase(cfg, async (db) => {
        const value = await createToken(db, name, [opts.scope], actor, opts.org.length ? opts.org : null);
        console.log(value);
        process.stderr.write("This is the only time the token is shown. Store it where the system that uses it keeps secrets.\n");
      });
    });
  token
    .command("revoke <name>")
    .description("revoke a token")
    .action(async function (this: Command, name: string) {
      const cfg = config(this);
      await withDatabase(cfg, async (db) => {
        await revokeToken(db, name, actor);
        console.log(`Revoked ${name}.`);
      });
    });

  const subject = cli.command("subject").description("data-subject requests: what Kuvert holds about one person");
  subject
    .command("report <matrix-id-or-email>")
    .description("list everything Kuvert holds about the person (audited)")
    .addOption(new Option("--language <language>", "language of the report").choices(["de", "en"]).default("de"))
    .option("--json", "as JSON")
    .action(async function (this: Command, who: string, opts: { language: "de" | "en"; json?: boolean }) {
      const cfg = config(this);
      const { formatReport, parseSubject, subjectReport } = await import("./audit/subject.ts");
      const { pseudonym } = await import("./log.ts");
      const report = await withDatabase(cfg, (db) => subjectReport(db, parseSubject(who).subject, { actor, pseudonymOf: pseudonym }));
      console.log(opts.json ? JSON.stringify(report, null, 2) : formatReport(report, opts.language));
    });
  subject
    .command("erase <matrix-id-or-email>")
    .description("remove or pseudonymise what Kuvert holds about the person, where the law allows; says what it kept and why")
    .option("--yes", "do it (without --yes, nothing is changed)")
    .action(async function (this: Command, who: string, opts: { yes?: boolean }) {
      const cfg = config(this);
      const { eraseSubject, parseSubject } = await import("./audit/subject.ts");
      const { pseudonym } = await import("./log.ts");
      if (!opts.yes) {
        console.log(`This erases what Kuvert holds about ${who} and cannot be undone. Run \`kuvert subject report\` first, then again with --yes.`);
        process.exitCode = 2;
        return;
      }
      const result = await withDatabase(cfg, (db) => eraseSubject(db, parseSubject(who).subject, actor, pseudonym));
      for (const e of result.erased) console.log(`erased: ${e.what}: ${e.count}`);
      for (const k of result.kept) console.log(`kept: ${k.what}: ${k.count} (${k.why})`);
    });

  cli
    .command("retention")
    .description("delete now what the retention settings say is due, and print the counts")
    .action(async function (this: Command) {
      const cfg = config(this);
      const { runRetention } = await import("./retention/retention.ts");
      const counts = await withDatabase(cfg, (db) => runRetention(db, cfg));
      if (!counts) console.log("Another Kuvert process is running retention right now; nothing done.");
      else
        console.log(
          Object.entries(counts)
            .map(([what, n]) => `${what}: ${n}`)
            .join("\n"),
        );
    });

  cli
    .command("metrics")
    .description("list the Prometheus metrics Kuvert serves (a Markdown table, as in the README)")
    .action(async () => {
      // The queue depth gauge counts the modules' queues too.
      await import("./queues.ts");
      const { metricList } = await import("./metrics.ts");
      console.log("| metric | type | meaning |\n| --- | --- | --- |");
      for (const m of await metricList()) console.log(`| \`${m.name}\` | ${m.type} | ${m.help} |`);
    });

  const auditCmd = cli.command("audit").description("the audit log");
  auditCmd
    .command("verify")
    .description("walk the hash chain and report the first broken link")
    .action(async function (this: Command) {
      const cfg = config(this);
      await withDatabase(cfg, async (db) => {
        const result = await verifyAuditLog(db);
        if (result.ok) console.log(`The audit log is intact: ${result.rows} rows, every link holds.`);
        else {
          console.log(`The audit log is broken at row ${result.brokenAt!.seq}: ${result.brokenAt!.reason}. ${result.rows} rows before it are intact.`);
          process.exitCode = 3;
        }
      });
    });

  auditCmd
    .command("export")
    .description("write the audit log (or a time range of it) as CSV or JSON Lines")
    .addOption(new Option("--format <format>", "output format").choices(["csv", "jsonl"]).default("csv"))
    .option("--from <time>", "from this time on (ISO 8601, e.g. 2026-01-01 or 2026-01-01T08:00:00Z)")
    .option("--to <time>", "before this time (ISO 8601)")
    .option("-o, --output <file>", "write to a file instead of standard output")
    .action(async function (this: Command, opts: { format: ExportFormat; from?: string; to?: string; output?: string }) {
      const cfg = config(this);
      const time = (name: string, value: string | undefined) => {
        if (value === undefined) return undefined;
        const date = new Date(value);
        if (Number.isNaN(date.getTime())) throw new KuvertError(ErrCode.InvalidInput, `--${name}: found ${JSON.stringify(value)}, expected a time like 2026-01-01 or 2026-01-01T08:00:00Z`);
        return date;
      };
      const range = { from: time("from", opts.from), to: time("to", opts.to) };
      const out = opts.output ? createWriteStream(opts.output, { mode: 0o600 }) : process.stdout;
      const count = await withDatabase(cfg, (db) => exportAuditLog(db, { ...range, format: opts.format }, (chunk) => new Promise<void>((resolve) => (out.write(chunk) ? resolve() : out.once("drain", () => resolve())))));
      if (opts.output) await new Promise<void>((resolve) => (out as ReturnType<typeof createWriteStream>).end(resolve));
      process.stderr.write(`${count} audit row(s) exported.\n`);
    });

  // The modules' commands (`kuvert account …`, …), switched on or not.
  const apiAccess = (cmd: Command, opts: { url?: string; token?: string }, scopes: string) => {
    const token = opts.token ?? process.env.KUVERT_TOKEN;
    if (!token) throw new KuvertError(ErrCode.Unauthorized, `An API token is needed: --token or $KUVERT_TOKEN (make one with \`kuvert token create NAME --scope ${scopes}\`).`);
    return { url: opts.url ?? config(cmd).publicApi.baseUrl, token };
  };
  for (const m of modules) m.cli?.(cli, { actor, config, withDatabase, apiAccess });
  return cli;
}

export async function main(argv: string[]): Promise<void> {
  try {
    await program().parseAsync(argv);
  } catch (err) {
    if (err instanceof ConfigError || err instanceof RegistrationError || err instanceof KuvertError) {
      process.stderr.write(`kuvert: ${err.message}\n`);
      process.exitCode = err instanceof KuvertError && err.status < 500 ? 2 : 1;
      return;
    }
    process.stderr.write(`kuvert: ${(err as Error).message}\n`);
    process.exitCode = 1;
  }
}
