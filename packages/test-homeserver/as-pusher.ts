import { request as httpRequestRaw } from "node:http";
import { request as httpsRequestRaw } from "node:https";
import type { Appservice } from "./appservices.ts";
import { MatrixError } from "./errors.ts";
import type { StoredEvent } from "./events.ts";
import { type JsonObject, type RoomEvent, asJson } from "./types.ts";

export class RequestTimeoutError extends Error {
  override name = "RequestTimedOutError";
}

export interface HttpResult {
  status: number;
  statusMessage: string;
  body: string;
}

/** A one-shot HTTP request without keep-alive, so nothing lingers after stop(). */
export function httpRequest(method: string, url: string, headers: Record<string, string>, body: string | undefined, timeoutMs: number, signal: AbortSignal): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const target = new URL(url);
    const send = target.protocol === "https:" ? httpsRequestRaw : httpRequestRaw;
    const req = send(target, { method, headers, agent: false });
    const timer = setTimeout(() => req.destroy(new RequestTimeoutError(`Timed out after ${timeoutMs} ms`)), timeoutMs);
    const onAbort = (): void => {
      req.destroy(new Error("Homeserver stopping"));
    };
    signal.addEventListener("abort", onAbort, { once: true });
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
    };
    req.on("response", (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("end", () => {
        done();
        resolve({ status: res.statusCode ?? 0, statusMessage: res.statusMessage ?? "", body: Buffer.concat(chunks).toString("utf8") });
      });
      res.on("error", (err) => {
        done();
        reject(err);
      });
    });
    req.on("error", (err) => {
      done();
      reject(err);
    });
    if (signal.aborted) onAbort();
    req.end(body);
  });
}

/** What a transaction carries; all but its events go with its first attempt only (see `send`). */
export interface TransactionContents {
  events: StoredEvent[];
  ephemeral: JsonObject[];
  /** MSC2409/MSC4203: to-device messages with `to_user_id` and `to_device_id`. */
  toDevice: JsonObject[];
  /** MSC3202: users whose device lists changed. */
  deviceListsChanged: string[];
}

interface Transaction extends TransactionContents {
  id: number;
  /** The MSC3202 fields, computed as the transaction first goes out. */
  extensions: JsonObject | undefined;
}

class Queue {
  events: StoredEvent[] = [];
  ephemeral: JsonObject[] = [];
  toDevice: JsonObject[] = [];
  deviceListsChanged = new Set<string>();
  inFlight: Transaction | undefined;
  retryTimer: NodeJS.Timeout | undefined;
  nextTxnId = 1;
  failures = 0;
  pushed = 0;
  attempts = 0;
  readonly watchers = new Set<() => void>();

  empty(): boolean {
    return this.events.length === 0 && this.ephemeral.length === 0 && this.toDevice.length === 0 && this.deviceListsChanged.size === 0;
  }

  idle(): boolean {
    return this.empty() && this.inFlight === undefined;
  }

  /** An appservice that is down loses what is not a room event (Synapse: "ephemeral events are dropped"). */
  dropEphemeral(): void {
    this.ephemeral = [];
    this.toDevice = [];
    this.deviceListsChanged.clear();
  }

  notify(): void {
    for (const watcher of [...this.watchers]) watcher();
  }
}

export interface PusherOptions {
  retryBaseMs: number;
  retryMaxMs: number;
  requestTimeoutMs: number;
  /**
   * AS API §"Legacy routes": push to `PUT {url}/transactions/{txnId}` with the hs_token in the
   * `access_token` query parameter and no Authorization header, as Synapse before 1.81 did
   * (synapse/appservice/api.py at v1.67.0, `push_bulk`).
   */
  legacyRoutes: boolean;
  serialize: (as: Appservice, ev: StoredEvent) => RoomEvent;
  /** The MSC3202 fields of a new transaction (key counts, device lists); `{}` when it carries none. */
  extensions: (as: Appservice, contents: TransactionContents) => JsonObject;
}

// Synapse's caps per transaction (synapse/appservice/scheduler.py): MAX_PERSISTENT_EVENTS_PER_TRANSACTION,
// MAX_EPHEMERAL_EVENTS_PER_TRANSACTION, MAX_TO_DEVICE_MESSAGES_PER_TRANSACTION.
const MAX_EVENTS_PER_TRANSACTION = 100;
const MAX_EPHEMERAL_PER_TRANSACTION = 100;
const MAX_TO_DEVICE_PER_TRANSACTION = 100;

/**
 * Pushes events to appservices (AS API §"Pushing events"): one transaction in flight per appservice,
 * increasing integer txnIds; a failed transaction is resent with its txnId and events with exponential
 * backoff, as Synapse's `_Recoverer` (synapse/appservice/scheduler.py) does, while newer events queue behind it.
 */
export class AppservicePusher {
  private readonly opts: PusherOptions;
  private readonly queues = new Map<string, Queue>();
  private readonly appservices = new Map<string, Appservice>();
  private readonly stopController = new AbortController();

  constructor(opts: PusherOptions) {
    this.opts = opts;
  }

  get stopSignal(): AbortSignal {
    return this.stopController.signal;
  }

  private queue(as: Appservice): Queue {
    let q = this.queues.get(as.id);
    if (!q) {
      q = new Queue();
      this.queues.set(as.id, q);
      this.appservices.set(as.id, as);
    }
    return q;
  }

  enqueue(as: Appservice, ev: StoredEvent): void {
    if (this.stopSignal.aborted || as.url === undefined) return;
    const q = this.queue(as);
    q.events.push(ev);
    this.pump(as, q);
  }

  /** What is not a room event: none while the appservice is down, as Synapse drops it then. */
  private ephemeralQueue(as: Appservice): Queue | undefined {
    if (this.stopSignal.aborted || as.url === undefined) return undefined;
    const q = this.queue(as);
    return q.failures > 0 ? undefined : q;
  }

  enqueueEphemeral(as: Appservice, edu: JsonObject): void {
    const q = as.receivesEphemeral ? this.ephemeralQueue(as) : undefined;
    if (!q) return;
    q.ephemeral.push(edu);
    this.pump(as, q);
  }

  /** To-device messages for the appservice's users, each with `to_user_id` and `to_device_id` (MSC2409/MSC4203). */
  enqueueToDevice(as: Appservice, messages: JsonObject[]): void {
    const q = as.receivesEphemeral ? this.ephemeralQueue(as) : undefined;
    if (!q || messages.length === 0) return;
    q.toDevice.push(...messages);
    this.pump(as, q);
  }

  /** A user whose device list changed (MSC3202); changes waiting for the next transaction are merged. */
  enqueueDeviceListChange(as: Appservice, userId: string): void {
    const q = as.transactionExtensions ? this.ephemeralQueue(as) : undefined;
    if (!q) return;
    q.deviceListsChanged.add(userId);
    this.pump(as, q);
  }

  private pump(as: Appservice, q: Queue): void {
    if (this.stopSignal.aborted || q.inFlight || q.retryTimer) return;
    if (q.empty()) {
      q.notify();
      return;
    }
    const contents: TransactionContents = {
      events: q.events.splice(0, MAX_EVENTS_PER_TRANSACTION),
      ephemeral: q.ephemeral.splice(0, MAX_EPHEMERAL_PER_TRANSACTION),
      toDevice: q.toDevice.splice(0, MAX_TO_DEVICE_PER_TRANSACTION),
      deviceListsChanged: [...q.deviceListsChanged].sort(),
    };
    q.deviceListsChanged.clear();
    const txn: Transaction = { id: q.nextTxnId++, ...contents, extensions: undefined };
    q.inFlight = txn;
    void this.send(as, q, txn);
  }

  private async send(as: Appservice, q: Queue, txn: Transaction): Promise<void> {
    const url = as.url;
    if (url === undefined) return;
    if (txn.extensions === undefined && as.transactionExtensions) {
      // Synapse computes them just before it sends, in the background: after the request that
      // queued the transaction is through (a key upload's one-time keys counted with its device keys).
      await new Promise<void>((resolve) => setImmediate(resolve));
      if (this.stopSignal.aborted) return;
    }
    txn.extensions ??= this.opts.extensions(as, txn);
    // AS API PUT /transactions (#put_matrixappv1transactionstxnid) as Synapse's `push_bulk`
    // (synapse/appservice/api.py) fills it: ephemeral events (MSC2409) under the key the registration
    // asked for; to-device messages under MSC2409's unstable key for either (MSC4203 has not
    // changed it); the MSC3202 fields for `org.matrix.msc3202`, each only when not empty.
    // Events are serialised at each attempt, as Synapse re-reads them from its store (age, redactions).
    const body: JsonObject = { events: txn.events.map((ev) => asJson(this.opts.serialize(as, ev))) };
    if (as.ephemeralKeys.stable) body["ephemeral"] = txn.ephemeral;
    if (as.ephemeralKeys.unstable) body["de.sorunome.msc2409.ephemeral"] = txn.ephemeral;
    if (as.receivesEphemeral) body["de.sorunome.msc2409.to_device"] = txn.toDevice;
    Object.assign(body, txn.extensions);
    q.attempts++;
    let delivered = false;
    try {
      const txnPath = `/transactions/${encodeURIComponent(String(txn.id))}`;
      const res = await httpRequest(
        "PUT",
        // AS API PUT /_matrix/app/v1/transactions/{txnId} (#put_matrixappv1transactionstxnid), or the legacy route.
        this.opts.legacyRoutes ? `${url}${txnPath}?access_token=${encodeURIComponent(as.reg.hs_token)}` : `${url}/_matrix/app/v1${txnPath}`,
        this.opts.legacyRoutes ? { "Content-Type": "application/json" } : { Authorization: `Bearer ${as.reg.hs_token}`, "Content-Type": "application/json" },
        JSON.stringify(body),
        this.opts.requestTimeoutMs,
        this.stopSignal,
      );
      delivered = res.status >= 200 && res.status < 300;
    } catch {
      delivered = false;
    }
    if (this.stopSignal.aborted) return;
    if (delivered) {
      q.inFlight = undefined;
      q.failures = 0;
      q.pushed++;
      this.pump(as, q);
      q.notify();
      return;
    }
    // Synapse stores a transaction's event IDs only: its retries carry the events and nothing else
    // ("Ephemeral events are NOT persisted to the database and are not resent if a transaction is
    // retried", create_appservice_txn; get_oldest_unsent_txn), and while the appservice is down
    // what is not a room event is dropped (_TransactionController.send).
    txn.ephemeral = [];
    txn.toDevice = [];
    txn.deviceListsChanged = [];
    txn.extensions = {};
    q.dropEphemeral();
    q.failures++;
    const delay = Math.min(this.opts.retryBaseMs * 2 ** (q.failures - 1), this.opts.retryMaxMs);
    q.retryTimer = setTimeout(() => {
      q.retryTimer = undefined;
      if (!this.stopSignal.aborted) void this.send(as, q, txn);
    }, delay);
    q.notify();
  }

  transactionsPushed(asId: string): number {
    return this.queues.get(asId)?.pushed ?? 0;
  }

  transactionAttempts(asId: string): number {
    return this.queues.get(asId)?.attempts ?? 0;
  }

  isIdle(asId?: string): boolean {
    const queues = asId === undefined ? [...this.queues.values()] : [this.queues.get(asId)].filter((q) => q !== undefined);
    return queues.every((q) => q.idle());
  }

  waitForIdle(asId: string | undefined, timeoutMs: number): Promise<void> {
    const queues = asId === undefined ? [...this.queues.values()] : [this.queues.get(asId)].filter((q) => q !== undefined);
    if (queues.every((q) => q.idle())) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (this.stopSignal.aborted) {
          finish();
          reject(new Error("Appservice push stopped before it was idle"));
          return;
        }
        if (!queues.every((q) => q.idle())) return;
        finish();
        resolve();
      };
      const finish = (): void => {
        clearTimeout(timer);
        for (const q of queues) q.watchers.delete(check);
      };
      const timer = setTimeout(() => {
        finish();
        const state = queues.map((q) => `${q.events.length} queued, ${q.inFlight ? `txn ${q.inFlight.id} in flight (${q.failures} failures)` : "none in flight"}`).join("; ");
        reject(new Error(`Appservice push not idle after ${timeoutMs} ms: ${state}`));
      }, timeoutMs);
      for (const q of queues) q.watchers.add(check);
    });
  }

  stop(): void {
    this.stopController.abort();
    for (const q of this.queues.values()) {
      if (q.retryTimer) clearTimeout(q.retryTimer);
      q.retryTimer = undefined;
      q.notify();
    }
  }
}

/** POST /_matrix/app/v1/ping on the appservice, mapped to errors as Synapse's AppservicePingRestServlet does. */
export async function pingAppservice(as: Appservice, txnId: string | undefined, timeoutMs: number, signal: AbortSignal): Promise<number> {
  const url = as.url;
  if (url === undefined) throw new MatrixError(400, "M_URL_NOT_SET", "The application service does not have a URL set");
  const start = performance.now();
  let res: HttpResult;
  try {
    res = await httpRequest("POST", `${url}/_matrix/app/v1/ping`, { Authorization: `Bearer ${as.reg.hs_token}`, "Content-Type": "application/json" }, JSON.stringify({ transaction_id: txnId ?? null }), timeoutMs, signal);
  } catch (err) {
    if (err instanceof RequestTimeoutError) throw new MatrixError(504, "M_CONNECTION_TIMEOUT", err.message);
    const e = err instanceof Error ? err : new Error(String(err));
    throw new MatrixError(502, "M_CONNECTION_FAILED", `${e.name}: ${e.message}`);
  }
  if (res.status < 200 || res.status >= 300) {
    throw new MatrixError(502, "M_BAD_STATUS", `HTTP ${res.status} ${res.statusMessage}`, { status: res.status, body: res.body });
  }
  return Math.floor(performance.now() - start);
}
