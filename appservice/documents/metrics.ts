// The documents' metrics, in Kuvert's registry (appservice/metrics.ts), read when Prometheus scrapes.
import { Counter } from "prom-client";
import { countsGauge, registry } from "../metrics.ts";

export const documentCounts = countsGauge({
  name: "kuvert_documents",
  help: "Documents Kuvert knows, by direction and state (received, scanning, held, rejected, delivered, checked, removed).",
  labelNames: ["direction", "state"] as const,
  sql: "SELECT direction, state, count(*) AS n FROM documents GROUP BY direction, state",
});

export const intakeWaitSeconds = new Counter({
  name: "kuvert_document_intake_wait_seconds_total",
  help: "Seconds uploads waited before they were read, while documents.intakeBacklog documents waited for delivery.",
  registers: [registry],
});
