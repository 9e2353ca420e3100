// End-to-end encryption's part of the configuration: the section e2ee. Whether new organisation
// rooms are encrypted is organisations.encryption (the core's, as it creates the rooms).
import { z } from "zod";
import type { ModuleConfig } from "../config/schema.ts";

const section = z
  .object({
    secret: z
      .string()
      .min(1)
      .optional()
      .describe(
        "Encrypts the bot device's keys and sessions at rest in Kuvert's database: at least 32 characters (e.g. `openssl rand -hex 32`; deploy/setup.sh init makes one). Prefer KUVERT_E2EE_SECRET. Required when organisations.encryption is on or any room is encrypted; never change it (the device's state could not be read again).",
      ),
    deviceId: z
      .string()
      .regex(/^[A-Z0-9_]{4,32}$/, "capital letters, digits and _, 4 to 32 of them")
      .default("KUVERT")
      .describe("The device ID of the bot's device (appservice login with this fixed ID). Staff see it in Element when they verify the bot."),
    decryptAttempts: z
      .number()
      .int()
      .min(1)
      .max(20)
      .default(9)
      .describe("Tries to decrypt a clerk's encrypted event while its room key may still be on its way (1 s, 2 s, 4 s … apart: 9 tries wait about 8 minutes). After that the event counts as undecryptable: it is redacted and the room is told why."),
  })
  .strict()
  .prefault({})
  .describe("End-to-end encryption: the bot's device in encrypted organisation rooms (and the staff room, when staff encrypted it).");

export const e2eeConfig = {
  section,
  environment: {
    KUVERT_E2EE_SECRET: ["secret"],
  },
  // The bot's device hears through the appservice's transactions: to-device messages (MSC2409;
  // Synapse: experimental_features.msc2409_to_device_messages_enabled), device lists and key counts
  // (MSC3202; msc3202_transaction_extensions), and speaks as its device (MSC3202 masquerading;
  // msc3202_device_masquerading). receive_ephemeral is MSC2409's stable name.
  registration: () => ({ receive_ephemeral: true, "de.sorunome.msc2409.push_ephemeral": true, "org.matrix.msc3202": true }),
  check: (config) =>
    config.organisations.encryption && config.e2ee.secret === undefined
      ? [{ path: ["e2ee", "secret"], message: "organisations.encryption is on, so the bot's device needs a secret for its keys: set KUVERT_E2EE_SECRET (at least 32 characters, e.g. `openssl rand -base64 48`)" }]
      : [],
} satisfies ModuleConfig;

declare module "../config/schema.ts" {
  interface ModuleSections {
    e2ee: z.output<typeof section>;
  }
}
