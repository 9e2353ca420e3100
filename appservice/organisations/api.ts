// Admin API for organisations (described in /api/v1/openapi.json).
import express, { type Request } from "express";
import type { Database } from "../db/database.ts";
import { ErrCode, KuvertError } from "../errors.ts";
import { actorOf } from "../http/auth.ts";
import { importOrganisations, parseOrganisationsCsv } from "./csv.ts";
import { previewImport } from "./preview.ts";
import { slugPattern, type Organisation } from "./model.ts";
import type { Organisations } from "./service.ts";
import type { StoredOrganisation } from "./store.ts";

/** The JSON body of a request that must be JSON. */
export function jsonBody(req: Request): unknown {
  if (!req.is("application/json")) throw new KuvertError(ErrCode.UnsupportedMediaType, "Send the body as application/json.");
  return req.body;
}

/** The organisation id in the path, checked as a slug. */
export function organisationId(req: Request): string {
  const id = String(req.params.id);
  if (!slugPattern.test(id)) throw new KuvertError(ErrCode.NotFound, `There is no organisation with the id ${id} (not a valid id).`);
  return id;
}

/** The API's view of an organisation (internal bookkeeping left out). */
export function present(org: StoredOrganisation): Organisation {
  const { welcomeEventId: _w, archiveNoticeEventId: _a, ...rest } = org;
  return rest;
}

function queryString(req: Request, name: string): string | undefined {
  const v = req.query[name];
  return typeof v === "string" && v !== "" ? v : undefined;
}

export function organisationRoutes(db: Database, organisations: Organisations): express.Router {
  const r = express.Router();

  r.get("/organisations", async (req, res) => {
    const state = queryString(req, "state");
    if (state !== undefined && state !== "active" && state !== "archived") {
      throw new KuvertError(ErrCode.InvalidInput, "state: expected active or archived", [{ path: "state", message: "expected active or archived" }]);
    }
    const limit = Number(queryString(req, "limit") ?? 1000);
    if (!Number.isInteger(limit) || limit < 1 || limit > 5000) throw new KuvertError(ErrCode.InvalidInput, "limit: expected a whole number from 1 to 5000");
    const list = await organisations.list({ tag: queryString(req, "tag"), state, search: queryString(req, "search"), after: queryString(req, "after"), limit });
    res.json({ organisations: list.map(present) });
  });

  r.post("/organisations", async (req, res) => {
    const result = await organisations.apply(jsonBody(req), actorOf(req));
    res.status(result.outcome === "created" ? 201 : 200).json({ outcome: result.outcome, organisation: present(result.organisation) });
  });

  r.post("/organisations/import", async (req, res) => {
    if (!req.is("text/csv") && !req.is("text/plain")) throw new KuvertError(ErrCode.UnsupportedMediaType, "Send the CSV file as text/csv.");
    if (typeof req.body !== "string" || req.body.trim() === "") throw new KuvertError(ErrCode.InvalidInput, "The CSV file is empty.");
    const rows = parseOrganisationsCsv(req.body);
    if (req.query.dryRun === "true") {
      // What each row would do, compared with what is stored; nothing is changed.
      res.json(await previewImport(db, rows));
      return;
    }
    const report = await importOrganisations(db, organisations, rows, actorOf(req));
    res.json(report);
  });

  r.get("/organisations/:id", async (req, res) => {
    res.json(present(await organisations.get(organisationId(req))));
  });

  r.patch("/organisations/:id", async (req, res) => {
    const result = await organisations.patch(organisationId(req), jsonBody(req), actorOf(req));
    res.json({ outcome: result.outcome, organisation: present(result.organisation) });
  });

  r.post("/organisations/:id/archive", async (req, res) => {
    const result = await organisations.archive(organisationId(req), actorOf(req));
    res.json({ outcome: result.outcome, organisation: present(result.organisation) });
  });

  r.post("/organisations/:id/clerks", async (req, res) => {
    const result = await organisations.addClerk(organisationId(req), jsonBody(req), actorOf(req));
    res.status(result.outcome === "unchanged" ? 200 : 201).json({ outcome: result.outcome, organisation: present(result.organisation) });
  });

  r.delete("/organisations/:id/clerks/:clerk", async (req, res) => {
    const result = await organisations.removeClerk(organisationId(req), String(req.params.clerk), actorOf(req));
    res.json({ outcome: result.outcome, organisation: present(result.organisation) });
  });

  return r;
}
