// Homeserver accounts for clerks' part of the configuration: the switch modules.accounts and the section accounts.
import { z } from "zod";
import type { ModuleConfig } from "../config/schema.ts";

export const accountsConfig = {
  switch: "Create homeserver accounts for clerks who have none (needs homeserver.adminToken), with password letters. Off: `createAccount` answers KUVERT_MODULE_REQUIRED.",
  section: z
    .object({
      signInUrl: z.url().optional().describe("Where clerks sign in (e.g. your Element Web, https://element.example.org): named in the letter and linked in the e-mail. Defaults to homeserver.publicUrl, then homeserver.url."),
      password: z
        .object({
          length: z.number().int().min(12).max(64).default(16).describe("Length of initial passwords."),
          lowercase: z.boolean().default(true).describe("At least one lower-case letter."),
          uppercase: z.boolean().default(true).describe("At least one upper-case letter."),
          digits: z.boolean().default(true).describe("At least one digit."),
          symbols: z.boolean().default(true).describe("At least one symbol (from -+=!?#%*)."),
        })
        .strict()
        .prefault({})
        .describe("Initial passwords: random, drawn from the classes switched on (characters easily mistaken in print, like 0/O and 1/l/I, are left out), at least one of each."),
      keyBackup: z.boolean().default(false).describe("Tell clerks in the letter's first steps to set up key backup (secure backup) in Element."),
    })
    .strict()
    .prefault({})
    .describe("Homeserver accounts Kuvert creates for clerks (`createAccount: true` on a clerk). The password goes out by letter, the sign-in link by e-mail."),
} satisfies ModuleConfig;

declare module "../config/schema.ts" {
  interface ModuleSections {
    accounts: z.output<typeof accountsConfig.section>;
  }
  interface ModuleSwitches {
    accounts: boolean;
  }
}
