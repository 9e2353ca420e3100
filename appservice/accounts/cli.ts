// `kuvert account …` and `kuvert letter …`: clerk accounts and password letters from the command line.
// Works on the database and the homeserver's admin API directly, like the admin API does.
import { writeFileSync } from "node:fs";
import type { Command } from "commander";
import type { KuvertConfig } from "../config/schema.ts";
import type { Database } from "../db/database.ts";
import { ErrCode, KuvertError } from "../errors.ts";
import type { Language } from "../i18n.ts";
import { Organisations } from "../organisations/service.ts";
import type { CliContext } from "../module.ts";
import { Accounts } from "./service.ts";
import { AccountErr } from "./errors.ts";

/** Organisations with this module's clerk accounts. */
function organisationsWithAccounts(db: Database, cfg: KuvertConfig): Organisations {
  const accounts = new Accounts(db, cfg);
  return new Organisations(db, undefined, () => accounts);
}

/** The Matrix ID a clerk reference (Matrix ID or e-mail) of an organisation names. */
async function clerkMatrixId(organisations: Organisations, organisationId: string, ref: string): Promise<string> {
  const org = await organisations.get(organisationId);
  const clerk = org.clerks.find((c) => c.status === "active" && (c.matrixId === ref || c.email?.toLowerCase() === ref.toLowerCase()));
  if (!clerk?.matrixId) throw new KuvertError(ErrCode.NotFound, `${ref} is not a clerk with an account in organisation ${organisationId}.`);
  return clerk.matrixId;
}

export function accountCommands(cli: Command, ctx: CliContext): void {
  cli
    .command("letter <organisation-id> [clerks...]")
    .description("produce the password letters due (one PDF): of the named clerks (Matrix ID or e-mail), or of every clerk of the organisation whose letter is due")
    .requiredOption("-o, --output <file>", "the PDF file to write (it holds passwords: print it, then delete it)")
    .option("--language <de|en>", "language of the letters (default: letters.language, by default organisations.language)")
    .action(async function (this: Command, organisationId: string, clerks: string[], opts: { output: string; language?: string }) {
      const cfg = ctx.config(this);
      if (opts.language !== undefined && opts.language !== "de" && opts.language !== "en") throw new KuvertError(ErrCode.InvalidInput, "--language: expected de or en");
      await ctx.withDatabase(cfg, async (db) => {
        const organisations = organisationsWithAccounts(db, cfg);
        const accounts = organisations.accounts as Accounts;
        const ids = clerks.length ? await Promise.all(clerks.map((c) => clerkMatrixId(organisations, organisationId, c))) : await accounts.dueLetters([organisationId]);
        if (ids.length === 0) throw new KuvertError(AccountErr.AccountNotReady, `No letter is due in organisation ${organisationId}.`);
        const { pdf, count } = await accounts.issueLetters(ids, ctx.actor, opts.language as Language | undefined);
        writeFileSync(opts.output, pdf, { mode: 0o600 });
        console.log(`Wrote ${count} letter(s) to ${opts.output}. Each password is in this file only: print it, then delete the file.`);
      });
    });

  const account = cli.command("account").description("homeserver accounts Kuvert created for clerks");
  account
    .command("list")
    .description("accounts and their state (requested, letter_ready, letter_issued, failed, deactivated)")
    .option("--org <id>", "of one organisation")
    .option("--json", "as JSON")
    .action(async function (this: Command, opts: { org?: string; json?: boolean }) {
      const cfg = ctx.config(this);
      await ctx.withDatabase(cfg, async (db) => {
        const list = await new Accounts(db, cfg).list({ organisationId: opts.org });
        if (opts.json) return console.log(JSON.stringify(list, null, 2));
        for (const a of list) console.log(`${a.matrixId}  ${a.name}  ${a.state}${a.failure ? `: ${a.failure}` : ""}  [${a.organisations.join(", ") || "–"}]`);
        if (list.length === 0) console.log("No accounts.");
      });
    });
  account
    .command("reset-password <organisation-id> <clerk>")
    .description("reset a clerk's password: the old one stops working now, the clerk gets an e-mail, and one new letter can be produced (kuvert letter)")
    .action(async function (this: Command, organisationId: string, clerk: string) {
      const cfg = ctx.config(this);
      await ctx.withDatabase(cfg, async (db) => {
        const organisations = organisationsWithAccounts(db, cfg);
        const matrixId = await clerkMatrixId(organisations, organisationId, clerk);
        await (organisations.accounts as Accounts).resetPassword(matrixId, ctx.actor);
        console.log(`Password of ${matrixId} reset. Produce the new letter with: kuvert letter ${organisationId} ${matrixId} -o letter.pdf`);
      });
    });
  account
    .command("deactivate <organisation-id> <clerk>")
    .description("remove the clerk from the organisation (kicked from the room) and deactivate the account Kuvert created on the homeserver")
    .option("--yes", "do it (without it, says what would happen)")
    .action(async function (this: Command, organisationId: string, clerk: string, opts: { yes?: boolean }) {
      const cfg = ctx.config(this);
      await ctx.withDatabase(cfg, async (db) => {
        const organisations = organisationsWithAccounts(db, cfg);
        const accounts = organisations.accounts as Accounts;
        const matrixId = await clerkMatrixId(organisations, organisationId, clerk);
        const plan = await accounts.deactivationPlan(organisationId, matrixId);
        if (!plan) throw new KuvertError(ErrCode.NotFound, `Kuvert made no active account ${matrixId}; remove the clerk with the admin API or an import.`);
        if (plan.otherOrganisations.length > 0) throw new KuvertError(AccountErr.ConfirmationRequired, `${matrixId} is still a clerk of ${plan.otherOrganisations.join(", ")}; remove them there first.`);
        if (!opts.yes) {
          console.log(`This would remove ${matrixId} from ${organisationId} (kicked from the room) and deactivate the account on the homeserver: they could no longer sign in, and the username is never given out again. Add --yes to do it.`);
          process.exitCode = 3;
          return;
        }
        await accounts.deactivate(plan, organisationId, ctx.actor);
        await organisations.removeClerk(organisationId, matrixId, ctx.actor);
        console.log(`Deactivated ${matrixId} and removed them from ${organisationId}; the running Kuvert kicks them from the room.`);
      });
    });
}
