// Circulars' part of the configuration: the switch modules.circulars and the section circulars.
import { z } from "zod";
import type { ModuleConfig } from "../config/schema.ts";

export const circularsConfig = {
  switch: "Circulars from the API and the staff room (!circular). Off: the API answers KUVERT_MODULE_DISABLED and the command says so.",
  section: z
    .object({
      concurrency: z.number().int().min(1).max(256).default(16).describe("Rooms one Kuvert process sends a circular to at once."),
      maxAttempts: z.number().int().min(1).max(100).default(12).describe("Attempts per room (rate limits and server errors are retried with a growing pause) before a delivery counts as failed."),
      progressIntervalSeconds: z.number().min(0.5).max(60).default(2).describe("Least time between two edits of the progress message in the staff room (the final state is always shown)."),
      attachmentWindowMinutes: z
        .number()
        .int()
        .min(1)
        .max(24 * 60)
        .default(30)
        .describe("Files a staff member posted in the staff room within this many minutes before their !circular are its attachments."),
      maxAttachments: z.number().int().min(0).max(20).default(10).describe("Most attachments of one circular."),
      stagingDir: z.string().optional().describe("Where attachments wait until they are scanned and uploaded (deleted then). Unset: beside documents.stagingDir, with -circulars appended."),
    })
    .strict()
    .prefault({})
    .describe("Circulars: one message (with attachments) from staff to many organisation rooms. Attachments follow documents.maxBytes, documents.allowedTypes and the scanner's limit."),
} satisfies ModuleConfig;

declare module "../config/schema.ts" {
  interface ModuleSections {
    circulars: z.output<typeof circularsConfig.section>;
  }
  interface ModuleSwitches {
    circulars: boolean;
  }
}
