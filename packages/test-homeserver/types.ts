export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };

export interface AppserviceNamespace {
  regex: string;
  exclusive: boolean;
}

/** A parsed registration.yaml (AS API §"Registration"). */
export interface AppserviceRegistration {
  id: string;
  url: string | null;
  as_token: string;
  hs_token: string;
  sender_localpart: string;
  namespaces?: {
    users?: AppserviceNamespace[];
    aliases?: AppserviceNamespace[];
    rooms?: AppserviceNamespace[];
  };
  rate_limited?: boolean;
  receive_ephemeral?: boolean;
  "de.sorunome.msc2409.push_ephemeral"?: boolean;
  /** MSC3202: one-time-key counts, unused fallback key types and device-list changes in transactions. */
  "org.matrix.msc3202"?: boolean;
  protocols?: string[];
}

/** An event in the client format (CS API §"Room Event Format"). */
export interface RoomEvent {
  type: string;
  content: JsonObject;
  event_id: string;
  sender: string;
  origin_server_ts: number;
  room_id: string;
  state_key?: string;
  redacts?: string;
  unsigned?: JsonObject;
}

export interface StateEvent extends RoomEvent {
  state_key: string;
}

/** A stripped state event (CS API §"Stripped state"). */
export interface StrippedStateEvent {
  type: string;
  state_key: string;
  sender: string;
  content: JsonObject;
}

export function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Views a typed event or response object as plain JSON. */
export function asJson(value: object): JsonObject {
  return value as JsonObject;
}

/** Appendix §"Canonical JSON": keys sorted, no insignificant whitespace (what signatures and hashes cover). */
export function canonicalJson(value: JsonValue): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (isJsonObject(value)) {
    return `{${Object.keys(value)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson(value[k] ?? null)}`)
      .join(",")}}`;
  }
  return JSON.stringify(value);
}
