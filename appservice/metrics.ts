// Prometheus metrics, served on their own listener (127.0.0.1 by default). The list in the
// README is generated from this registry (`kuvert metrics list`) and a test compares them.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { Database } from "./db/database.ts";
import { buildInfo } from "./version.ts";

export const registry = new Registry();
// Node and process metrics as prom-client names them, prefixed: kuvert_process_*, kuvert_nodejs_*.
collectDefaultMetrics({ register: registry, prefix: "kuvert_" });

export const scanDuration = new Histogram({
  name: "kuvert_scan_duration_seconds",
  help: "Time clamd took to scan one file, by verdict (clean, infected, unscannable, too_large, unavailable).",
  labelNames: ["verdict"] as const,
  buckets: [0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 120],
  registers: [registry],
});

export const homeserverRequests = new Histogram({
  name: "kuvert_homeserver_request_duration_seconds",
  help: "Duration of Kuvert's requests to the homeserver, by method and outcome (ok, client_error, server_error, rate_limited, unreachable).",
  labelNames: ["method", "outcome"] as const,
  buckets: [0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
  registers: [registry],
});

export const documentsInFlightLimit = new Gauge({
  name: "kuvert_documents_in_flight_limit",
  help: "How many documents this process sends to the homeserver at once, as adapted to the homeserver's answers (from workers.concurrency up to workers.maxDocumentsInFlight; lower after a 429).",
  registers: [registry],
});

export const transactionsReceived = new Counter({
  name: "kuvert_appservice_transactions_total",
  help: "Transactions the homeserver pushed, by outcome (stored; echoes: only Kuvert's own events, nothing to keep; replayed; failed).",
  labelNames: ["outcome"] as const,
  registers: [registry],
});

/** The outcome label of a homeserver answer. */
export function requestOutcome(status: number): string {
  if (status === 0) return "unreachable";
  if (status === 429) return "rate_limited";
  if (status >= 500) return "server_error";
  if (status >= 400) return "client_error";
  return "ok";
}

new Gauge({
  name: "kuvert_build_info",
  help: "Always 1; its labels say which Kuvert is running: version, commit, schema_version (the database schema it knows), api_version.",
  labelNames: ["version", "commit", "schema_version", "api_version"] as const,
  registers: [registry],
  collect() {
    const info = buildInfo();
    this.set({ version: info.version, commit: info.commit, schema_version: String(info.schemaVersion), api_version: info.apiVersion }, 1);
  },
});

let database: Database | undefined;

/** Metrics read from the database when Prometheus scrapes (cheap: partial indexes on pending rows). */
export function bindDatabase(db: Database): void {
  database = db;
}

/** The database metrics are read from, once Kuvert has started (none for `kuvert metrics`). */
export function boundDatabase(): Database | undefined {
  return database;
}

/**
 * A gauge of counts read from the database when Prometheus scrapes, for a domain's own table:
 * `sql` gives one row per label set, with the label columns and the count as `n`.
 */
export function countsGauge<L extends string>(opts: { name: string; help: string; labelNames: readonly L[]; sql: string }): Gauge<L> {
  return new Gauge<L>({
    name: opts.name,
    help: opts.help,
    labelNames: opts.labelNames,
    registers: [registry],
    async collect() {
      this.reset();
      if (!database) return;
      const { rows } = await database.query<Record<L, string> & { n: string }>(opts.sql);
      for (const r of rows) {
        const labels = {} as Record<L, string>;
        for (const l of opts.labelNames) labels[l] = r[l];
        this.set(labels, Number(r.n));
      }
    },
  });
}

new Gauge({
  name: "kuvert_transaction_lag_seconds",
  help: "Age of the oldest event from the homeserver that is stored but not yet handled (0 when none waits).",
  registers: [registry],
  async collect() {
    if (!database) return;
    const { rows } = await database.query<{ lag: number | null }>("SELECT extract(epoch FROM now() - min(received_at))::float8 AS lag FROM inbound_events WHERE state = 'pending'");
    this.set(Number(rows[0]?.lag ?? 0));
  },
});

new Gauge({
  name: "kuvert_mail_notifications",
  help: "E-mail notifications by state (pending, sent, combined, dead).",
  labelNames: ["state"] as const,
  registers: [registry],
  async collect() {
    this.reset();
    if (!database) return;
    const { rows } = await database.query<{ state: string; n: string }>("SELECT state, count(*) AS n FROM mail_outbox GROUP BY state");
    for (const r of rows) this.set({ state: r.state }, Number(r.n));
  },
});

/** Times a homeserver request into kuvert_homeserver_request_duration_seconds. */
export async function timedRequest<T>(method: string, run: () => Promise<T>, statusOf: (err: unknown) => number): Promise<T> {
  const end = homeserverRequests.startTimer({ method });
  try {
    const value = await run();
    end({ outcome: "ok" });
    return value;
  } catch (err) {
    end({ outcome: requestOutcome(statusOf(err)) });
    throw err;
  }
}

/** Name, type and help of every Kuvert metric (the process metrics of prom-client left out). */
export async function metricList(): Promise<{ name: string; type: string; help: string }[]> {
  const all = await registry.getMetricsAsJSON();
  return all
    .filter((m) => !m.name.startsWith("kuvert_process_") && !m.name.startsWith("kuvert_nodejs_"))
    .map((m) => ({ name: m.name, type: String(m.type), help: m.help }))
    .sort((a, b) => a.name.localeCompare(b.name));
}
