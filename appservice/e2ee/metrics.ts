// End-to-end encryption's metrics, in Kuvert's registry (appservice/metrics.ts).
import { Counter } from "prom-client";
import { registry } from "../metrics.ts";

export const e2eeMetrics = {
  encrypted: new Counter({ name: "kuvert_e2ee_encrypted_events_total", help: "Events the bot's device encrypted and sent into encrypted rooms.", registers: [registry] }),
  decrypted: new Counter({ name: "kuvert_e2ee_decrypted_events_total", help: "Encrypted events from rooms that the bot's device decrypted (and Kuvert then handled and scanned).", registers: [registry] }),
  undecryptable: new Counter({
    name: "kuvert_e2ee_undecryptable_total",
    help: "Encrypted events the bot's device could not decrypt within e2ee.decryptAttempts, by room (organisation: redacted, the room told why; other: set aside).",
    labelNames: ["room"] as const,
    registers: [registry],
  }),
};
