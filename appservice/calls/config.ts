// Video consultations' part of the configuration: the switch modules.calls and the section calls.
import { z } from "zod";
import type { ModuleConfig } from "../config/schema.ts";

export const callsConfig = {
  switch: "Video consultations: !video, the calls API, guest links and the Jitsi user verification (/verify). Off: !video is unknown and the API answers KUVERT_MODULE_NOT_LOADED.",
  section: z
    .object({
      jitsiDomain: z
        .string()
        .regex(/^[A-Za-z0-9.\-]+(:\d+)?$/, "a host name like meet.example.org")
        .optional()
        .describe("The Jitsi Meet domain: the widget's data.domain, Element's jitsi.preferred_domain, and the `sub` of guest tokens. Unset: calls cannot be started (KUVERT_NOT_CONFIGURED)."),
      jitsiUrl: z.url().optional().describe("Where browsers reach that Jitsi deployment (the guest page loads its /external_api.js from here). Defaults to https://<jitsiDomain>."),
      widgetBaseUrl: z.url().default("https://app.element.io/").describe("Element Web's address: the widget URL is its jitsi.html wrapper (Element's own rule; use your Element, e.g. https://chat.example.org/)."),
      appId: z.string().min(1).default("kuvert").describe("Issuer and audience of guest tokens: Jitsi's JWT_APP_ID."),
      appSecret: z.string().min(1).optional().describe("Secret that signs guest tokens (HS256): Jitsi's JWT_APP_SECRET. Prefer KUVERT_JITSI_APP_SECRET. Unset: no guest links."),
      membershipCheck: z.boolean().default(true).describe("Jitsi lets in only members of the room (Element's auth \"openidtoken-jwt\", verified by Kuvert's /verify endpoints); the conference id is then the room id in base32. Off: an unguessable random conference id."),
      callMinutes: z
        .number()
        .int()
        .min(5)
        .max(24 * 60)
        .default(120)
        .describe("A call ends this many minutes after it started: its widget is removed from the room."),
      guestLinkMinutes: z
        .number()
        .int()
        .min(5)
        .max(7 * 24 * 60)
        .default(60)
        .describe("How long a guest link is valid when staff do not say (never beyond the call's end)."),
      maxGuestLinkMinutes: z
        .number()
        .int()
        .min(5)
        .max(7 * 24 * 60)
        .default(24 * 60)
        .describe("The longest validity staff may ask for a guest link."),
      verifyToken: z.string().min(1).optional().describe("Bearer token Prosody must send to /verify (its MATRIX_UVS_AUTH_TOKEN). Prefer KUVERT_JITSI_VERIFY_TOKEN. Unset: no token needed (keep /verify on the internal network then)."),
    })
    .strict()
    .prefault({})
    .describe("Video consultations with Jitsi: Element's Jitsi widget in organisation rooms, member-only conferences, guest links."),
  environment: {
    KUVERT_JITSI_APP_SECRET: ["appSecret"],
    KUVERT_JITSI_VERIFY_TOKEN: ["verifyToken"],
  },
} satisfies ModuleConfig;

declare module "../config/schema.ts" {
  interface ModuleSections {
    calls: z.output<typeof callsConfig.section>;
  }
  interface ModuleSwitches {
    calls: boolean;
  }
}
