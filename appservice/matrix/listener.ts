// The application service API (homeserver → Kuvert). Its own listener, internal network only.
import { createHash, timingSafeEqual } from "node:crypto";
import { createServer, type Server } from "node:http";
import express, { type NextFunction, type Request, type Response } from "express";
import { logger } from "../log.ts";
import { isMatrixEvent, type MatrixEvent } from "./events.ts";
import type { Inbox } from "./inbox.ts";
import type { Readiness } from "../health.ts";
import { transactionsReceived } from "../metrics.ts";
import { buildInfo } from "../version.ts";

const log = logger("appservice-api");

function digest(text: string): Buffer {
  return createHash("sha256").update(text).digest();
}

/** Constant-time comparison of a presented token with the expected one. */
export function tokenMatches(presented: string, expected: string): boolean {
  return timingSafeEqual(digest(presented), digest(expected));
}

function matrixError(res: Response, status: number, errcode: string, error: string): void {
  res.status(status).json({ errcode, error });
}

export interface AppserviceListenerOptions {
  hsToken: string;
  inbox: Inbox;
  /** Called after a transaction was stored, to wake the worker. */
  onStored(): void;
  /** Readiness with details: only on this internal listener, never on the public one. */
  readiness: Readiness;
  maxBodyBytes?: number;
  /** More routes for the homeserver's side, each with its own authentication (the upload check). */
  routes?: express.Router[];
}

export function appserviceApp(opts: AppserviceListenerOptions): express.Express {
  const app = express();
  app.disable("x-powered-by");

  // AS API §"Authorization": the homeserver sends hs_token as a bearer token (Matrix ≥ 1.4);
  // older homeservers (Synapse < 1.81) put it in the access_token query parameter, which the
  // spec still allows. The query string is never logged: only req.path goes into log lines.
  const authenticate = (req: Request, res: Response, next: NextFunction) => {
    const header = req.headers.authorization;
    const query = req.query.access_token;
    const presented = header?.startsWith("Bearer ") ? header.slice(7) : typeof query === "string" ? query : undefined;
    if (presented === undefined) return matrixError(res, 401, "M_UNAUTHORIZED", "No hs_token was supplied.");
    if (!tokenMatches(presented, opts.hsToken)) {
      log.warn({ path: req.path }, "request with a wrong hs_token refused");
      return matrixError(res, 403, "M_FORBIDDEN", "The hs_token is not the one in Kuvert's registration.");
    }
    next();
  };
  const body = express.json({ limit: opts.maxBodyBytes ?? 50 * 1024 * 1024 });

  // AS API §"PUT /_matrix/app/v1/transactions/{txnId}": stored first, answered after.
  const transaction = async (req: Request, res: Response) => {
    const payload = req.body as { events?: unknown } | undefined;
    if (!payload || !Array.isArray(payload.events)) return matrixError(res, 400, "M_BAD_JSON", "The body must have an events array.");
    const txnId = String(req.params.txnId);
    const events = payload.events.filter(isMatrixEvent) as MatrixEvent[];
    if (events.length !== payload.events.length) log.warn({ dropped: payload.events.length - events.length }, "events without the required fields were ignored");
    try {
      const outcome = await opts.inbox.store(txnId, events, payload as Record<string, unknown>);
      transactionsReceived.inc({ outcome });
      log.debug({ txnId, events: events.length, outcome }, "transaction");
      res.json({});
      if (outcome === "stored") opts.onStored();
    } catch (err) {
      // Not stored: the homeserver keeps the transaction and sends it again.
      transactionsReceived.inc({ outcome: "failed" });
      log.error({ err, txnId }, "storing a transaction failed");
      matrixError(res, 500, "M_UNKNOWN", "Kuvert could not store the transaction; send it again later.");
    }
  };
  // AS API §"GET /_matrix/app/v1/users/{userId}" and §"GET /_matrix/app/v1/rooms/{roomAlias}":
  // Kuvert makes its users and rooms itself and never on demand.
  const noUser = (_req: Request, res: Response) => matrixError(res, 404, "M_NOT_FOUND", "Kuvert does not create users on demand.");
  const noRoom = (_req: Request, res: Response) => matrixError(res, 404, "M_NOT_FOUND", "Kuvert does not create rooms on demand.");

  app.use("/_matrix/app", authenticate, body);
  app.put("/_matrix/app/v1/transactions/:txnId", transaction);
  // AS API §"POST /_matrix/app/v1/ping" (Matrix 1.7).
  app.post("/_matrix/app/v1/ping", (_req, res) => {
    res.json({});
  });
  app.get("/_matrix/app/v1/users/:userId", noUser);
  app.get("/_matrix/app/v1/rooms/:alias", noRoom);
  app.use("/_matrix/app", (_req, res) => matrixError(res, 404, "M_UNRECOGNIZED", "Unrecognised request."));

  // AS API §"Legacy routes": homeservers before the /_matrix/app/v1 prefix (Synapse < 1.81 only
  // uses these; 1.81–1.87 fall back to them) call the unprefixed paths with the token in the
  // query. Same check, same handlers. Only on this internal listener, never on the public one.
  app.put("/transactions/:txnId", authenticate, body, transaction);
  app.get("/users/:userId", authenticate, noUser);
  app.get("/rooms/:alias", authenticate, noRoom);

  app.get("/health", (_req, res) => {
    res.type("text/plain").send("OK");
  });
  // Details of every check, for operators on the internal network (the public /readyz says only ready or not).
  app.get("/readyz", async (_req, res) => {
    const result = await opts.readiness.check();
    res.status(result.ready ? 200 : 503).json({ status: result.ready ? "ready" : "not ready", checks: result.checks });
  });
  // Which Kuvert this is, for operators on the internal network: version, commit, schema and API version.
  app.get("/version", (_req, res) => {
    res.json(buildInfo());
  });
  for (const routes of opts.routes ?? []) app.use(routes);
  app.use((_req: Request, res: Response) => matrixError(res, 404, "M_UNRECOGNIZED", "Unrecognised request."));
  app.use((err: Error & { status?: number; type?: string }, _req: Request, res: Response, _next: NextFunction) => {
    if (err.type === "entity.parse.failed") return matrixError(res, 400, "M_NOT_JSON", "The body is not valid JSON.");
    if (err.type === "entity.too.large") return matrixError(res, 413, "M_TOO_LARGE", "The transaction is too large.");
    log.error({ err }, "appservice API error");
    matrixError(res, err.status ?? 500, "M_UNKNOWN", "Internal error.");
  });
  return app;
}

export async function listen(app: express.Express, host: string, port: number): Promise<Server> {
  const server = createServer(app);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  return server;
}

export function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeIdleConnections();
  });
}

export function boundPort(server: Server): number {
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("server is not listening on TCP");
  return address.port;
}
