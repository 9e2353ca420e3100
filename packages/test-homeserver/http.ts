import type { IncomingMessage } from "node:http";
import { MatrixError, badJson, invalidParam, notJson, tooLarge, unrecognized } from "./errors.ts";
import { isJsonObject, type JsonObject } from "./types.ts";

export interface Reply {
  status: number;
  json?: unknown;
  body?: Buffer;
  headers?: Record<string, string>;
}

export const ok = (json: unknown = {}, status = 200): Reply => ({ status, json });

const MAX_JSON_BODY = 10 * 1024 * 1024;

/** One incoming request, with its path parameters decoded. */
export class Req {
  readonly raw: IncomingMessage;
  readonly method: string;
  /** The path as sent (percent-encoded), without the query. */
  readonly rawPath: string;
  readonly query: URLSearchParams;
  params: Record<string, string> = {};
  private bodyPromise: Promise<Buffer> | undefined;

  constructor(raw: IncomingMessage) {
    this.raw = raw;
    this.method = (raw.method ?? "GET").toUpperCase();
    const url = new URL(raw.url ?? "/", "http://localhost");
    this.rawPath = url.pathname;
    this.query = url.searchParams;
  }

  header(name: string): string | undefined {
    const value = this.raw.headers[name.toLowerCase()];
    return Array.isArray(value) ? value[0] : value;
  }

  /** Reads the whole body, refusing more than `limit` bytes with 413 M_TOO_LARGE. */
  body(limit = MAX_JSON_BODY): Promise<Buffer> {
    this.bodyPromise ??= new Promise<Buffer>((resolve, reject) => {
      const declared = Number(this.header("content-length") ?? "0");
      if (declared > limit) {
        this.raw.resume();
        reject(tooLarge("Upload request body is too large"));
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      this.raw.on("data", (chunk: Buffer) => {
        size += chunk.length;
        if (size > limit) {
          reject(tooLarge("Upload request body is too large"));
          this.raw.removeAllListeners("data");
          this.raw.resume();
          return;
        }
        chunks.push(chunk);
      });
      this.raw.on("end", () => resolve(Buffer.concat(chunks)));
      this.raw.on("error", reject);
    });
    return this.bodyPromise;
  }

  /** Synapse's `parse_json_object_from_request`. */
  async json(opts: { allowEmpty?: boolean } = {}): Promise<JsonObject> {
    const buf = await this.body();
    if (buf.length === 0 && opts.allowEmpty) return {};
    let parsed: unknown;
    try {
      parsed = JSON.parse(buf.toString("utf8"));
    } catch {
      throw notJson();
    }
    if (!isJsonObject(parsed)) throw badJson("Content must be a JSON object.");
    return parsed;
  }

  queryInt(name: string, fallback: number): number {
    const value = this.query.get(name);
    if (value === null || value === "") return fallback;
    if (!/^-?\d+$/.test(value)) throw invalidParam(`Query parameter ${JSON.stringify(name)} must be an integer`);
    return Number(value);
  }
}

export type Handler = (req: Req) => Promise<Reply> | Reply;

interface Route {
  method: string;
  regex: RegExp;
  names: string[];
  handler: Handler;
}

export type RouteMatch = { handler: Handler; params: Record<string, string> } | { status: 404 | 405 };

/**
 * Patterns: `:name` is one non-empty path segment, a trailing `/:name?` an optional (possibly empty)
 * last segment. Paths of the deprecated r0 prefix are served by the v3 routes, as Synapse does.
 */
export class Router {
  private readonly routes: Route[] = [];

  add(method: string, pattern: string, handler: Handler): void {
    const names: string[] = [];
    const source = pattern
      .split("/")
      .slice(1)
      .map((segment) => {
        if (segment.startsWith(":") && segment.endsWith("?")) {
          names.push(segment.slice(1, -1));
          return "(?:/([^/]*))?";
        }
        if (segment.startsWith(":")) {
          names.push(segment.slice(1));
          return "/([^/]+)";
        }
        return "/" + segment.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
      })
      .join("");
    this.routes.push({ method, regex: new RegExp(`^${source}$`), names, handler });
  }

  match(method: string, rawPath: string): RouteMatch {
    const path = rawPath.replace(/^\/_matrix\/client\/r0\//, "/_matrix/client/v3/").replace(/^\/_matrix\/media\/r0\//, "/_matrix/media/v3/");
    let pathMatched = false;
    for (const route of this.routes) {
      const m = route.regex.exec(path);
      if (!m) continue;
      pathMatched = true;
      if (route.method !== method && !(method === "HEAD" && route.method === "GET")) continue;
      const params: Record<string, string> = {};
      route.names.forEach((name, i) => {
        const value = m[i + 1] ?? "";
        try {
          params[name] = decodeURIComponent(value);
        } catch {
          throw invalidParam(`Invalid percent-encoding in path segment ${JSON.stringify(value)}`);
        }
      });
      return { handler: route.handler, params };
    }
    return { status: pathMatched ? 405 : 404 };
  }
}

export function errorReply(err: unknown): Reply {
  if (err instanceof MatrixError) return { status: err.status, json: err.body() };
  process.stderr.write(`[test-homeserver] internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  return { status: 500, json: { errcode: "M_UNKNOWN", error: "Internal server error" } };
}

export function unrecognizedReply(status: 404 | 405): Reply {
  return errorReply(unrecognized(status));
}
