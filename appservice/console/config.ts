// The staff console' part of the configuration: the switch modules.console and the section console.
import { z } from "zod";
import type { ModuleConfig } from "../config/schema.ts";

export const consoleConfig = {
  switch: "Serve the staff console at /console/ and let staff sign in to it. Off: /console/ says so and sign-in answers KUVERT_MODULE_DISABLED.",
  section: z
    .object({
      idleMinutes: z
        .number()
        .min(1)
        .max(24 * 60)
        .default(30)
        .describe("A console session ends after this many minutes without a request."),
      maxHours: z
        .number()
        .min(1)
        .max(24 * 7)
        .default(12)
        .describe("A console session ends after this many hours, however active."),
      signInAttemptsPerMinute: z.number().int().min(1).default(10).describe("Failed console sign-ins one client address may make per minute before it is refused for a while."),
      staticDir: z.string().optional().describe("Directory of the built console (npm run build:web). Unset: web/console/dist in Kuvert's installation."),
    })
    .strict()
    .prefault({})
    .describe("The staff console in the browser: staff sign in with their Matrix account (roles from staff[].roles)."),
} satisfies ModuleConfig;

declare module "../config/schema.ts" {
  interface ModuleSections {
    console: z.output<typeof consoleConfig.section>;
  }
  interface ModuleSwitches {
    console: boolean;
  }
}
