// The calls API (scope staff or admin; described in /api/v1/openapi.json), the guest session
// endpoint the guest page asks, and the guest page itself (web/guest/).
import { join } from "node:path";
import express, { type RequestHandler } from "express";
import helmet from "helmet";
import { ErrCode, KuvertError } from "../errors.ts";
import { readJson } from "../http/input.ts";
import { actorOf } from "../http/auth.ts";
import { jsonBody, organisationId } from "../organisations/api.ts";
import type { Calls } from "./service.ts";
import { CallErr } from "./errors.ts";

export const guestPageDir = join(import.meta.dirname, "..", "..", "web", "guest");

/** Staff-facing routes: start, show, end calls; issue, list, revoke guest links. */
export function callRoutes(calls: Calls | null, auth: RequestHandler): express.Router {
  const r = express.Router();
  const paths = ["/organisations/:id/call", "/calls", "/calls/:callId/guest-links", "/guest-links/:linkId"];
  r.use(paths, auth, ...readJson("64kb"), (_req, _res, next) => {
    next(calls ? undefined : new KuvertError(ErrCode.ModuleNotLoaded, "Video consultations are switched off (modules.calls)."));
  });
  if (!calls) return r;

  r.post("/organisations/:id/call", async (req, res) => {
    const { call, reused } = await calls.start(organisationId(req), actorOf(req), { sender: null, announce: true });
    res.status(reused ? 200 : 201).json({ reused, call });
  });
  r.get("/organisations/:id/call", async (req, res) => {
    const call = await calls.current(organisationId(req));
    if (!call) throw new KuvertError(CallErr.NoCall, `No call is running in the room of ${String(req.params.id)}.`);
    res.json(call);
  });
  r.delete("/organisations/:id/call", async (req, res) => {
    res.json(await calls.end(organisationId(req), actorOf(req), { announce: true }));
  });
  r.get("/calls", async (req, res) => {
    const state = typeof req.query.state === "string" ? req.query.state : undefined;
    if (state !== undefined && state !== "running" && state !== "ended") {
      throw new KuvertError(ErrCode.InvalidInput, "state: expected running or ended", [{ path: "state", message: "expected running or ended" }]);
    }
    const limit = Number(typeof req.query.limit === "string" ? req.query.limit : 100);
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new KuvertError(ErrCode.InvalidInput, "limit: expected a whole number from 1 to 1000");
    const organisation = typeof req.query.organisation === "string" && req.query.organisation !== "" ? req.query.organisation : undefined;
    res.json({ calls: await calls.list({ running: state === undefined ? undefined : state === "running", organisationId: organisation, limit }) });
  });
  r.post("/calls/:callId/guest-links", async (req, res) => {
    res.status(201).json(await calls.issueGuestLink(String(req.params.callId), jsonBody(req), actorOf(req)));
  });
  r.get("/calls/:callId/guest-links", async (req, res) => {
    res.json({ guestLinks: await calls.guestLinks(String(req.params.callId)) });
  });
  r.delete("/guest-links/:linkId", async (req, res) => {
    res.json(await calls.revokeGuestLink(String(req.params.linkId), actorOf(req)));
  });
  return r;
}

/**
 * The guest page and its session endpoint (no API token: the guest link's own token is the
 * credential). The page may load scripts and frames only from Kuvert and the configured Jitsi
 * origin (Content-Security-Policy).
 */
export function guestRoutes(calls: Calls | null): express.Router {
  const r = express.Router();
  r.post("/api/v1/guest/session", ...readJson("16kb"), async (req, res) => {
    if (!calls) throw new KuvertError(ErrCode.ModuleNotLoaded, "Video consultations are switched off (modules.calls).");
    const body = jsonBody(req) as { token?: unknown } | null;
    res.set("Cache-Control", "no-store").json(await calls.guestSession(body?.token));
  });
  if (!calls?.configured) return r;
  const jitsiOrigin = new URL(calls.jitsiUrl).origin;
  // Replaces the public listener's default policy for the page: scripts and frames from Kuvert and the one Jitsi origin.
  const csp = helmet.contentSecurityPolicy({
    useDefaults: false,
    directives: {
      defaultSrc: ["'self'"],
      scriptSrc: ["'self'", jitsiOrigin],
      frameSrc: [jitsiOrigin],
      connectSrc: ["'self'"],
      styleSrc: ["'self'"],
      imgSrc: ["'self'", "data:"],
      baseUri: ["'none'"],
      formAction: ["'none'"],
      frameAncestors: ["'none'"],
      objectSrc: ["'none'"],
    },
  });
  // Camera, microphone and screen sharing only for the Jitsi frame.
  const permissions = `camera=(self "${jitsiOrigin}"), microphone=(self "${jitsiOrigin}"), display-capture=(self "${jitsiOrigin}"), fullscreen=(self "${jitsiOrigin}")`;
  // /call → /call/, so that the page's relative URLs (guest.js, guest.css) resolve below it.
  r.get("/call", (req, res, next) => (req.originalUrl.split("?")[0] === "/call" ? res.redirect(301, `/call/${req.originalUrl.slice(5)}`) : next()));
  r.use(
    "/call",
    csp,
    (_req, res, next) => {
      res.set("Permissions-Policy", permissions);
      res.set("Referrer-Policy", "no-referrer");
      res.set("Cache-Control", "no-cache");
      next();
    },
    express.static(guestPageDir, { index: "index.html", fallthrough: true, redirect: false }),
  );
  return r;
}
