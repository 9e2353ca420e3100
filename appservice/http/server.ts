// The public HTTP listener: admin API, OpenAPI document, health. Never the appservice port.
import express, { type NextFunction, type Request, type Response } from "express";
import helmet from "helmet";
import { rateLimit } from "express-rate-limit";
import type { Database } from "../db/database.ts";
import { ErrCode, KuvertError } from "../errors.ts";
import { logger } from "../log.ts";
import { organisationRoutes } from "../organisations/api.ts";
import type { Organisations } from "../organisations/service.ts";
import { readJson, requestLineCheck } from "./input.ts";
import { openApiDocument } from "./openapi.ts";
import { requireScope } from "./auth.ts";
import type { Readiness } from "../health.ts";
import { version } from "../version.ts";

const log = logger("public-api");

export interface PublicApiDeps {
  db: Database;
  organisations: Organisations;
  readiness: Readiness;
  baseUrl: string;
  trustProxy: boolean;
  rateLimitPerMinute: number;
  failedAuthPerMinute: number;
  /** The modules' routers, each with its own authentication, mounted at the root before the admin API (module order). */
  moduleRoutes?: express.Router[];
  /** The modules' routers inside the admin API (scope admin, bodies read), before the organisations' routes. */
  moduleAdminRoutes?: express.Router[];
}

export function publicApp(deps: PublicApiDeps): express.Express {
  const app = express();
  app.disable("x-powered-by");
  if (deps.trustProxy) app.set("trust proxy", true);
  app.use(helmet());
  // Before any route: no NUL characters in the address, no broken percent-escapes in the path.
  app.use(requestLineCheck);
  const tooMany = (message: string) => (_req: Request, _res: Response, next: NextFunction) => next(new KuvertError(ErrCode.RateLimited, message));
  app.use(rateLimit({ windowMs: 60_000, limit: deps.rateLimitPerMinute, standardHeaders: "draft-7", legacyHeaders: false, handler: tooMany("Too many requests from this address; try again in a minute.") }));
  // Wrong and missing tokens count separately and much lower: guessing tokens is slow.
  app.use(
    "/api",
    rateLimit({
      windowMs: 60_000,
      limit: deps.failedAuthPerMinute,
      standardHeaders: "draft-7",
      legacyHeaders: false,
      requestWasSuccessful: (_req, res) => res.statusCode !== 401,
      skipSuccessfulRequests: true,
      handler: tooMany("Too many requests with a wrong or missing token from this address; try again in a minute."),
    }),
  );

  app.get("/healthz", (_req, res) => {
    res.json({ status: "ok" });
  });
  // Public readiness says only ready or not; details are for the internal listener.
  app.get("/readyz", async (_req, res) => {
    const result = await deps.readiness.check();
    res.status(result.ready ? 200 : 503).json({ status: result.ready ? "ready" : "not ready" });
  });

  // Public: the program version only; the commit and schema version are for the internal listener.
  app.get("/version", (_req, res) => {
    res.json({ version });
  });

  app.get("/api/v1/openapi.json", (_req, res) => {
    res.json(openApiDocument(deps.baseUrl));
  });

  // Before the admin router, which reads JSON bodies and admits only admin tokens: module routes
  // admit their own scopes (staff tokens for calls and circulars, drop tokens for documents) and
  // stream their bodies. The console comes first: it reads the session cookie that the routes
  // after it accept.
  for (const router of deps.moduleRoutes ?? []) app.use(router);

  const admin = express.Router();
  admin.use(requireScope(deps.db, "admin"));
  admin.use(readJson("1mb"));
  admin.use(express.text({ type: ["text/csv", "text/plain"], limit: "20mb" }));
  // The modules' first: accounts must ask for a confirmation before a clerk with a Kuvert account is removed.
  for (const router of deps.moduleAdminRoutes ?? []) admin.use(router);
  admin.use(organisationRoutes(deps.db, deps.organisations));
  app.use("/api/v1", admin);

  app.use((req: Request, _res: Response, next: NextFunction) => next(new KuvertError(ErrCode.NotFound, `No such endpoint: ${req.method} ${req.path}`)));
  app.use(errorHandler);
  return app;
}

/** The code for a client error that express or a body parser raised with a bare HTTP status. */
const clientErrorCodes: Partial<Record<number, ErrCode>> = {
  403: ErrCode.Forbidden,
  404: ErrCode.NotFound,
  413: ErrCode.TooLarge,
  415: ErrCode.UnsupportedMediaType,
};

export function errorHandler(err: unknown, req: Request, res: Response, _next: NextFunction): void {
  let error: KuvertError;
  const e = err as { type?: string; status?: number; message?: string };
  if (err instanceof KuvertError) error = err;
  else if (e?.type === "entity.parse.failed") error = new KuvertError(ErrCode.BadJson, `The body is not valid JSON: ${e.message ?? "parse error"}`);
  else if (e?.type === "entity.too.large") error = new KuvertError(ErrCode.TooLarge, "The body is too large.");
  else if (e?.type === "charset.unsupported" || e?.type === "encoding.unsupported") error = new KuvertError(ErrCode.UnsupportedMediaType, e.message ?? "unsupported encoding");
  else if (e?.type === "request.aborted" || e?.type === "request.size.invalid") error = new KuvertError(ErrCode.BodyIncomplete, "The request body ended before its announced length; send it again in full.");
  else if (err instanceof URIError) error = new KuvertError(ErrCode.InvalidInput, "The address contains a broken percent-escape (e.g. %ZZ or a lone %); encode '%' as %25.");
  else if (typeof e?.status === "number" && e.status >= 400 && e.status < 500) error = new KuvertError(clientErrorCodes[e.status] ?? ErrCode.InvalidInput, e.message ?? "The request cannot be read.");
  else {
    log.error({ err, path: req.path }, "request failed");
    error = new KuvertError(ErrCode.Internal, "Internal error; the log has the details.");
  }
  res.status(error.status).json(error.toJSON());
}
