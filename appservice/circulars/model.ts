// What a circular is, in the words of the API and the staff-room command: text, targets,
// schedule. Decisions only; the store and the workers do the I/O.
import { randomBytes } from "node:crypto";
import { z } from "zod";
import { KuvertError, parseInput } from "../errors.ts";
import { organisationId, tag } from "../organisations/model.ts";
import { CircularErr } from "./errors.ts";

/** A circular's states, in the order it goes through them (cancelled and stopped end it early). */
export const circularStates = ["scheduled", "scanning", "sending", "sent", "cancelled", "stopped"] as const;
export type CircularState = (typeof circularStates)[number];
export type DeliveryState = "pending" | "delivered" | "failed";

/** Longest circular text accepted (Matrix events are at most 64 KiB in all; HTML doubles the text). */
export const MAX_TEXT_CHARS = 20_000;

export const targetsInput = z.union([z.object({ all: z.literal(true) }).strict(), z.object({ tag }).strict(), z.object({ organisations: z.array(organisationId).min(1, "at least one organisation").max(10_000) }).strict()]);
export type Targets = z.infer<typeof targetsInput>;

export const circularInput = z
  .object({
    text: z.string().max(MAX_TEXT_CHARS),
    targets: targetsInput,
    scheduledAt: z.iso.datetime({ offset: true }).optional().describe("When to send (ISO 8601 with Z or an offset); absent: now."),
  })
  .strict();
export type CircularInput = z.infer<typeof circularInput>;

export const correctionInput = z.object({ text: z.string().max(MAX_TEXT_CHARS) }).strict();

export function newCircularId(): string {
  return `circ_${randomBytes(6).toString("base64url")}`;
}

/** Checks the parts of a circular that need no database: text present, schedule not in the past. */
export function checkCircular(raw: unknown, now = new Date()): { text: string; targets: Targets; scheduledAt: Date | null } {
  const input = parseInput(circularInput, raw);
  const text = checkText(input.text);
  let scheduledAt: Date | null = null;
  if (input.scheduledAt !== undefined) {
    scheduledAt = new Date(input.scheduledAt);
    // A minute's grace for clocks and typing; earlier than that is a mistake, not "now".
    if (scheduledAt.getTime() < now.getTime() - 60_000) {
      throw new KuvertError(CircularErr.ScheduleInPast, `The time ${input.scheduledAt} is in the past; leave scheduledAt out to send now.`, [{ path: "scheduledAt", message: "in the past" }]);
    }
  }
  return { text, targets: input.targets, scheduledAt };
}

export function checkText(text: string): string {
  const trimmed = text.replace(/\r\n?/g, "\n").trim();
  if (trimmed === "") throw new KuvertError(CircularErr.Empty, "The circular has no text; write what it says.", [{ path: "text", message: "empty" }]);
  return trimmed;
}

/** How targets read in the staff room and the API: "all organisations", "tag schools", "3 organisations". */
export function describeTargets(t: Targets): string {
  if ("all" in t) return "all";
  if ("tag" in t) return `tag:${t.tag}`;
  return `org:${t.organisations.join(",")}`;
}

export interface CircularCommand {
  kind: "send";
  targets: Targets;
  scheduledAt: string | undefined;
  text: string;
}

export type ParsedCircularCommand = CircularCommand | { kind: "cancel"; id: string } | { kind: "status"; id: string | undefined } | { kind: "correct"; id: string; text: string } | { kind: "error"; message: string };

/**
 * Reads a `!circular` message: the first line holds the command and its words, the lines below
 * it the text (Element sends a multi-line message as one body).
 *
 *   !circular all | tag:<tag> | org:<id>[,<id>…] [at:<ISO time>]   + text below
 *   !circular cancel <id>
 *   !circular status [<id>]
 *   !circular correct <id>                                            + new text below
 */
export function parseCircularCommand(body: string): ParsedCircularCommand {
  const normalised = body.replace(/\r\n?/g, "\n");
  const newline = normalised.indexOf("\n");
  const first = (newline < 0 ? normalised : normalised.slice(0, newline)).trim();
  const rest = newline < 0 ? "" : normalised.slice(newline + 1);
  const words = first.split(/\s+/).slice(1);
  const [verb, ...more] = words;
  if (verb === undefined) return { kind: "error", message: "no-target" };
  const lower = verb.toLowerCase();
  if (lower === "cancel") return more[0] ? { kind: "cancel", id: more[0] } : { kind: "error", message: "no-id" };
  if (lower === "status") return { kind: "status", id: more[0] };
  if (lower === "correct") return more[0] ? { kind: "correct", id: more[0], text: rest } : { kind: "error", message: "no-id" };
  let targets: Targets | undefined;
  let scheduledAt: string | undefined;
  for (const word of words) {
    const [key, ...value] = word.split(":");
    const v = value.join(":");
    switch (key!.toLowerCase()) {
      case "all":
        if (v !== "") return { kind: "error", message: `bad-word:${word}` };
        targets = { all: true };
        break;
      case "tag":
        targets = { tag: v };
        break;
      case "org":
      case "orgs":
        targets = { organisations: v.split(",").filter(Boolean) };
        break;
      case "at":
        scheduledAt = v;
        break;
      default:
        return { kind: "error", message: `bad-word:${word}` };
    }
  }
  if (!targets) return { kind: "error", message: "no-target" };
  return { kind: "send", targets, scheduledAt, text: rest };
}
