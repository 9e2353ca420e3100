// What an organisation is, in the words of the admin API, the command line and the CSV import.
import { z } from "zod";

export const slugPattern = /^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$/;
// CS API appendix §"User Identifiers" (historical characters are not accepted for new users).
export const userIdPattern = /^@[a-z0-9._=\-/+]+:(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/;
const emailPattern = /^[^\s@<>()[\]\\,;:"]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$/;

export const organisationId = z.string().regex(slugPattern, "a slug: 1–64 lower-case letters, digits and hyphens, starting and ending with a letter or digit");
export const tag = z.string().regex(/^[a-z0-9][a-z0-9-]{0,39}$/, "a tag: lower-case letters, digits and hyphens");

export const clerkInput = z
  .object({
    matrixId: z.string().regex(userIdPattern, "a Matrix user ID like @anna:example.org").max(255).optional(),
    email: z.string().max(254).regex(emailPattern, "an e-mail address like anna@example.org").optional(),
    name: z.string().trim().min(1).max(200).optional(),
    createAccount: z.boolean().optional().describe("Kuvert creates an account on the homeserver for this clerk (needs name and email); the password goes out by letter."),
    username: z.string().trim().min(1).max(255).optional().describe("With createAccount: the preferred username (localpart). Unset: derived from the name."),
  })
  .strict()
  .refine((c) => c.matrixId !== undefined || c.email !== undefined, { message: "a clerk needs a matrixId, an email, or both" })
  .refine((c) => c.createAccount === true || c.username === undefined, { message: "username only goes with createAccount: true", path: ["username"] })
  .refine((c) => c.createAccount !== true || (c.email !== undefined && c.name !== undefined), { message: "createAccount needs the clerk's name and email" });
export type ClerkInput = z.infer<typeof clerkInput>;

export const organisationInput = z
  .object({
    id: organisationId,
    name: z.string().trim().min(1, "a name").max(200),
    tags: z.array(tag).max(50).default([]),
    clerks: z.array(clerkInput).max(500).default([]),
  })
  .strict()
  .superRefine((org, ctx) => {
    const seen = new Set<string>();
    org.clerks.forEach((c, i) => {
      if (c.matrixId === undefined && c.email === undefined) return;
      const key = c.matrixId ?? `email:${c.email!.toLowerCase()}`;
      if (seen.has(key)) ctx.addIssue({ code: "custom", path: ["clerks", i], message: `a clerk listed once (${c.matrixId ?? c.email} is listed twice)` });
      seen.add(key);
    });
  });
export type OrganisationInput = z.infer<typeof organisationInput>;

/** Partial update: fields given replace the stored ones. */
export const organisationPatch = z
  .object({
    name: z.string().trim().min(1).max(200).optional(),
    tags: z.array(tag).max(50).optional(),
    clerks: z.array(clerkInput).max(500).optional(),
  })
  .strict();
export type OrganisationPatch = z.infer<typeof organisationPatch>;

export interface Clerk {
  id: string;
  matrixId: string | null;
  email: string | null;
  name: string | null;
  status: "active" | "removed";
  membership: string | null;
}

export interface Organisation {
  id: string;
  name: string;
  tags: string[];
  state: "active" | "archived";
  roomId: string | null;
  roomState: "pending" | "ready" | "lost";
  roomProblem: string | null;
  /** Power levels Kuvert could not set back (the room otherwise works); null when they are as Kuvert keeps them. */
  powerLevelsProblem: string | null;
  createdAt: string;
  updatedAt: string;
  archivedAt: string | null;
  clerks: Clerk[];
}

export type ApplyOutcome = "created" | "updated" | "unchanged";

/** Normalises tags and clerks so that two inputs meaning the same compare equal. */
export function normalise(input: OrganisationInput): OrganisationInput {
  return {
    id: input.id,
    name: input.name.trim(),
    tags: [...new Set(input.tags)].sort(),
    clerks: input.clerks.map((c) => ({
      ...(c.matrixId ? { matrixId: c.matrixId } : {}),
      ...(c.email ? { email: c.email.toLowerCase() } : {}),
      ...(c.name ? { name: c.name } : {}),
      ...(c.createAccount ? { createAccount: true } : {}),
      ...(c.createAccount && c.username ? { username: c.username } : {}),
    })),
  };
}
