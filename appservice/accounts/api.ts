// Admin API for clerk accounts and password letters (described in /api/v1/openapi.json).
import express, { type NextFunction, type Request, type Response } from "express";
import { z } from "zod";
import { ErrCode, KuvertError, parseInput } from "../errors.ts";
import { actorOf } from "../http/auth.ts";
import type { Language } from "../i18n.ts";
import { slugPattern, userIdPattern } from "../organisations/model.ts";
import type { Organisations } from "../organisations/service.ts";
import type { Accounts } from "./service.ts";
import type { AccountState } from "./store.ts";
import { AccountErr } from "./errors.ts";

const states = ["requested", "letter_ready", "letter_issued", "failed", "deactivated"] as const;

export const lettersRequest = z
  .object({
    organisations: z.array(z.string().regex(slugPattern, "an organisation id")).max(5000).optional().describe("Every letter due among these organisations' clerks."),
    accounts: z.array(z.string().regex(userIdPattern, "a Matrix ID")).max(5000).optional().describe("These accounts' letters."),
    language: z.enum(["de", "en"]).optional().describe("Unset: letters.language, by default organisations.language."),
  })
  .strict()
  .refine((r) => (r.organisations?.length ?? 0) + (r.accounts?.length ?? 0) > 0, { message: "name organisations, accounts, or both" });

function language(req: Request, fallback?: Language): Language | undefined {
  const v = req.query.language ?? fallback;
  if (v === undefined) return undefined;
  if (v !== "de" && v !== "en") throw new KuvertError(ErrCode.InvalidInput, "language: expected de or en", [{ path: "language", message: "expected de or en" }]);
  return v;
}

function sendPdf(res: Response, pdf: Buffer, count: number, filename: string): void {
  res.status(200);
  res.setHeader("Content-Type", "application/pdf");
  res.setHeader("Content-Disposition", `attachment; filename="${filename}"`);
  res.setHeader("Cache-Control", "no-store");
  res.setHeader("Kuvert-Letters", String(count));
  res.end(pdf);
}

export function accountRoutes(organisations: Organisations, accounts: Accounts): express.Router {
  const r = express.Router();

  /** The clerk the path names (Matrix ID or e-mail), an active clerk of the organisation. */
  async function clerkOf(req: Request): Promise<{ organisationId: string; matrixId: string | null }> {
    const id = String(req.params.id);
    if (!slugPattern.test(id)) throw new KuvertError(ErrCode.NotFound, `There is no organisation with the id ${id} (not a valid id).`);
    const org = await organisations.get(id);
    const ref = String(req.params.clerk);
    const clerk = org.clerks.find((c) => c.status === "active" && (c.matrixId === ref || c.email?.toLowerCase() === ref.toLowerCase()));
    if (!clerk) throw new KuvertError(ErrCode.NotFound, `${ref} is not a clerk of organisation ${id}.`);
    return { organisationId: id, matrixId: clerk.matrixId };
  }

  r.get("/accounts", async (req, res) => {
    const state = typeof req.query.state === "string" && req.query.state !== "" ? req.query.state : undefined;
    if (state !== undefined && !(states as readonly string[]).includes(state)) {
      throw new KuvertError(ErrCode.InvalidInput, `state: expected one of ${states.join(", ")}`, [{ path: "state", message: `expected one of ${states.join(", ")}` }]);
    }
    const organisation = typeof req.query.organisation === "string" && req.query.organisation !== "" ? req.query.organisation : undefined;
    res.json({ accounts: await accounts.list({ organisationId: organisation, state: state as AccountState | undefined }) });
  });

  r.get("/accounts/:matrixId", async (req, res) => {
    res.json(await accounts.get(String(req.params.matrixId)));
  });

  r.post("/organisations/:id/clerks/:clerk/letter", async (req, res) => {
    const { matrixId } = await clerkOf(req);
    if (!matrixId) throw new KuvertError(ErrCode.NotFound, `Kuvert made no account for ${String(req.params.clerk)}.`);
    const { pdf, count } = await accounts.issueLetters([matrixId], actorOf(req), language(req));
    sendPdf(res, pdf, count, `kuvert-letter-${matrixId.slice(1).split(":")[0]}.pdf`);
  });

  r.post("/organisations/:id/clerks/:clerk/password-reset", async (req, res) => {
    const { matrixId } = await clerkOf(req);
    if (!matrixId) throw new KuvertError(ErrCode.NotFound, `Kuvert made no account for ${String(req.params.clerk)}.`);
    const account = await accounts.resetPassword(matrixId, actorOf(req));
    res.json({ account, letterUrl: `/api/v1/organisations/${String(req.params.id)}/clerks/${encodeURIComponent(matrixId)}/letter` });
  });

  r.post("/letters", async (req, res) => {
    if (!req.is("application/json")) throw new KuvertError(ErrCode.UnsupportedMediaType, "Send the body as application/json.");
    const body = parseInput(lettersRequest, req.body);
    const due = body.organisations?.length ? await accounts.dueLetters(body.organisations) : [];
    const ids = [...new Set([...due, ...(body.accounts ?? [])])];
    if (ids.length === 0) throw new KuvertError(AccountErr.AccountNotReady, "No letter is due for these organisations: every account's letter was produced already, or none is created yet.");
    const { pdf, count } = await accounts.issueLetters(ids, actorOf(req), body.language);
    sendPdf(res, pdf, count, "kuvert-letters.pdf");
  });

  // Removing a clerk whose account Kuvert created: the account is deactivated too, after confirmation.
  r.delete("/organisations/:id/clerks/:clerk", async (req: Request, res: Response, next: NextFunction) => {
    const { organisationId, matrixId } = await clerkOf(req);
    const plan = await accounts.deactivationPlan(organisationId, matrixId);
    if (!plan || req.query.keepAccount === "true") {
      next();
      return;
    }
    if (plan.otherOrganisations.length > 0) {
      throw new KuvertError(AccountErr.ConfirmationRequired, `${plan.matrixId} is still a clerk of ${plan.otherOrganisations.join(", ")}; remove them there first, or add ?keepAccount=true to remove them only here and keep the account.`);
    }
    if (req.query.confirm !== "true") {
      throw new KuvertError(
        AccountErr.ConfirmationRequired,
        `Removing ${plan.matrixId} kicks them from the room of ${organisationId} and deactivates the account Kuvert created on the homeserver: they can no longer sign in, and the username is never given out again. Repeat with ?confirm=true to do so, or with ?keepAccount=true to remove them from the organisation only.`,
      );
    }
    await accounts.deactivate(plan, organisationId, actorOf(req));
    const result = await organisations.removeClerk(organisationId, plan.matrixId, actorOf(req));
    const { welcomeEventId: _w, archiveNoticeEventId: _a, ...organisation } = result.organisation;
    res.json({ outcome: result.outcome, organisation, accountDeactivated: plan.matrixId });
  });

  return r;
}
