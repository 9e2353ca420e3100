// The calls' metric, in Kuvert's registry (appservice/metrics.ts).
import { Counter } from "prom-client";
import { registry } from "../metrics.ts";

/** Prosody's questions to /verify, by endpoint and outcome (admitted or the refusal's reason). */
export const verifications = new Counter({
  name: "kuvert_call_verifications_total",
  help: "User verification requests (/verify, from Jitsi's Prosody), by endpoint and outcome (admitted, token, purpose, not_member, room_not_managed, bearer, rate_limited).",
  labelNames: ["endpoint", "outcome"] as const,
  registers: [registry],
});
