// Clerk accounts as a Kuvert module: the service that creates homeserver accounts for clerks
// (organisations call it for `createAccount`), its worker, its e-mails, the admin API for
// accounts and password letters, and `kuvert account …` / `kuvert letter …`.
import { defineModule } from "../module.ts";
import { accountRoutes } from "./api.ts";
import { accountCommands } from "./cli.ts";
import { accountMailRenderer } from "./mail.ts";
// Registers the accounts' metric with Kuvert's registry.
import "./metrics.ts";
import { accountPaths, accountSchemas } from "./openapi.ts";
import { Accounts } from "./service.ts";
import { accountsSubject } from "./subject.ts";
import { AccountErr } from "./errors.ts";
import { accountsConfig } from "./config.ts";

declare module "../module.ts" {
  interface ModuleServices {
    accounts: Accounts;
  }
}

export const accountsModule = defineModule({
  name: "accounts",
  config: accountsConfig,
  // Always loaded: modules.accounts switches off creating new accounts (the service refuses them,
  // KUVERT_MODULE_REQUIRED), while accounts created earlier still need letters and deactivation.
  enabled: () => true,
  subject: accountsSubject,
  queues: { accounts: "account_creation" },
  errors: AccountErr,
  start(ctx) {
    const { db, config, staffRoom } = ctx;
    // Staff hear of an account that could not be created: by mail in the transaction that records it, then in the staff room.
    const accounts = new Accounts(db, config, ctx.wakeRooms, undefined, {
      inTransaction: (tx, alert, org) => staffRoom.alertByMail(tx, { key: alert.key, mail: alert.body }, org),
      post: (alert) => staffRoom.post(alert),
    });
    return {
      service: accounts,
      clerkAccounts: accounts,
      // Inside the admin API, before the organisations' routes: removing a clerk with a Kuvert account needs a confirmation first.
      adminRoutes: [accountRoutes(ctx.organisations, accounts)],
      workers: [accounts.worker()],
      mailRenderers: { account: accountMailRenderer(config) },
    };
  },
  cli: accountCommands,
  clerkAccounts: (db, config) => new Accounts(db, config),
  openApi: { schemas: (t) => accountSchemas(t.schema), paths: (t) => accountPaths(t.errors) },
});
