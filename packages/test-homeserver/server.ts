import { type IncomingMessage, type Server, type ServerResponse, createServer } from "node:http";
import type { Socket } from "node:net";
import { adminRoutes } from "./admin.ts";
import type { Core } from "./core.ts";
import type { Faults } from "./faults.ts";
import { unrecognized } from "./errors.ts";
import { type Reply, Req, Router, errorReply, unrecognizedReply } from "./http.ts";
import { mediaRoutes } from "./media.ts";
import { accountRoutes } from "./routes-account.ts";
import { keyRoutes } from "./routes-keys.ts";
import { roomRoutes } from "./routes-rooms.ts";
import { userRoutes } from "./routes-user.ts";
import { synapse167Routes } from "./synapse-1.67.ts";
import { syncRoutes } from "./sync.ts";

// Route comments cite the spec as `METHOD path (#anchor)`; the anchors are those of
// https://spec.matrix.org/v1.12/client-server-api/ (CS API), .../application-service-api/ (AS API)
// and .../server-server-api/ (SS API). Synapse admin routes cite Synapse's docs/admin_api/.
const CORS_HEADERS: Record<string, string> = {
  "Access-Control-Allow-Origin": "*",
  "Access-Control-Allow-Methods": "GET, HEAD, POST, PUT, DELETE, OPTIONS",
  "Access-Control-Allow-Headers": "X-Requested-With, Content-Type, Authorization, Date",
  "Access-Control-Expose-Headers": "Synapse-Trace-Id, Server",
};

export function buildRouter(core: Core): Router {
  const router = new Router();
  // First match wins: 1.67's answers for what it does not have yet go before the current routes.
  if (core.opts.synapse === "1.67") synapse167Routes(router, core);
  userRoutes(router, core);
  accountRoutes(router, core);
  roomRoutes(router, core);
  keyRoutes(router, core);
  syncRoutes(router, core);
  mediaRoutes(router, core);
  adminRoutes(router, core);
  return router;
}

function write(res: ServerResponse, reply: Reply, method: string): void {
  if (res.headersSent || res.destroyed) return;
  const headers: Record<string, string> = { ...CORS_HEADERS, ...(reply.headers ?? {}) };
  let body: Buffer;
  if (reply.body !== undefined) {
    body = reply.body;
  } else {
    body = Buffer.from(JSON.stringify(reply.json ?? {}), "utf8");
    headers["Content-Type"] = "application/json";
  }
  headers["Content-Length"] = String(body.length);
  res.writeHead(reply.status, headers);
  res.end(method === "HEAD" ? undefined : body);
}

/** The HTTP front: fault injection first, then routing; every error becomes a Matrix error body. */
export class HttpFront {
  readonly server: Server;
  private readonly sockets = new Set<Socket>();
  private readonly synapse: "1.67" | "current";

  constructor(core: Core, faults: Faults) {
    this.synapse = core.opts.synapse;
    const router = buildRouter(core);
    this.server = createServer((raw: IncomingMessage, res: ServerResponse) => {
      void this.handle(router, faults, raw, res);
    });
    this.server.on("connection", (socket: Socket) => {
      this.sockets.add(socket);
      socket.on("close", () => this.sockets.delete(socket));
    });
  }

  private async handle(router: Router, faults: Faults, raw: IncomingMessage, res: ServerResponse): Promise<void> {
    const req = new Req(raw);
    if (req.method === "OPTIONS") {
      write(res, { status: 200, json: {} }, req.method);
      return;
    }
    let reply: Reply;
    try {
      // The whole request is read before a fault may hold it, so a held request from a client
      // that died meanwhile is still complete when it is released (as a proxy would have it).
      // (Media uploads keep their own, larger limit and are read by their route.)
      if (!req.rawPath.startsWith("/_matrix/media/")) await req.body().catch(() => undefined);
      const interception = await faults.intercept(req.method, req.rawPath);
      if (interception.kind === "drop") {
        res.destroy();
        return;
      }
      if (interception.kind === "reply") {
        write(res, { status: interception.status, json: interception.body, ...(interception.headers ? { headers: interception.headers } : {}) }, req.method);
        return;
      }
      const match = router.match(req.method, req.rawPath);
      if ("status" in match) {
        // Synapse 1.67 answered unknown client-server paths with 400 (newer releases: 404).
        const legacy = this.synapse === "1.67" && match.status === 404 && req.rawPath.startsWith("/_matrix/client/");
        reply = legacy ? errorReply(unrecognized(400)) : unrecognizedReply(match.status);
      } else {
        req.params = match.params;
        reply = await match.handler(req);
      }
    } catch (err) {
      reply = errorReply(err);
    }
    write(res, reply, req.method);
  }

  listen(host: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(port, host, () => {
        this.server.off("error", reject);
        const address = this.server.address();
        resolve(typeof address === "object" && address !== null ? address.port : port);
      });
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      for (const socket of this.sockets) socket.destroy();
      this.sockets.clear();
    });
  }
}
