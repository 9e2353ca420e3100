// Element's Jitsi widget, as plain functions: what Kuvert puts into a room so that Element
// shows the call exactly as if Element had started it. No I/O here.
//
// Everything below follows Element Web's own code, field by field:
//  - src/utils/WidgetUtils.ts `addJitsiWidget`: widget id `randomString(24)`, conference id
//    base32(room id) without padding for auth "openidtoken-jwt" (the rule of
//    prosody-mod-auth-matrix-user-verification), otherwise `Jitsi` + 1 upper-case + 23
//    lower-case letters; the URL from `getLocalJitsiWrapperUrl({auth})` with `?confId=` set;
//    data `{conferenceId, roomName, isAudioOnly, isVideoChannel, domain, auth}`.
//  - `setRoomWidget`: state event `im.vector.modular.widgets`, state key = widget id, content
//    `{type: "jitsi" (WidgetType.JITSI.legacy), url, name, data}`; removing = empty content.
//    Element sends no creatorUserId in room widgets: `makeAppConfig` takes it from the event's
//    sender (Kuvert's bot here).
//  - src/stores/widgets/WidgetLayoutStore.ts: `io.element.widgets.layout`, state key "",
//    content `{widgets: {<id>: {container: "top", index, width, height}}}` (percentages).
import { randomInt } from "node:crypto";
import { base32 as rfc4648 } from "rfc4648";

export const WIDGET_EVENT = "im.vector.modular.widgets";
export const LAYOUT_EVENT = "io.element.widgets.layout";
export const OPENID_AUTH = "openidtoken-jwt";
/** Element's name for the widgets it adds from the call button (LegacyCallHandler). */
export const WIDGET_NAME = "Jitsi";

const upper = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const lower = "abcdefghijklmnopqrstuvwxyz";
const digits = "0123456789";

function randomFrom(alphabet: string, length: number): string {
  let out = "";
  for (let i = 0; i < length; i++) out += alphabet[randomInt(alphabet.length)];
  return out;
}

/** Element's `randomString(24)` (matrix-js-sdk: upper, lower case letters and digits). */
export function newWidgetId(): string {
  return randomFrom(upper + lower + digits, 24);
}

/** RFC 4648 base32 without padding, as Element makes it (the same `rfc4648` package, `pad: false`). */
export function base32(input: string | Uint8Array): string {
  return rfc4648.stringify(typeof input === "string" ? new TextEncoder().encode(input) : input, { pad: false });
}

/** The room id back from a base32 conference id (what Prosody's module does; Jitsi lower-cases room names), or null. */
export function base32Decode(text: string): string | null {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(rfc4648.parse(text.toUpperCase(), { loose: true }));
  } catch {
    return null;
  }
}

/** The conference id: base32 of the room id when Jitsi checks membership, else an unguessable random one. */
export function conferenceIdFor(roomId: string, auth: typeof OPENID_AUTH | null): string {
  if (auth === OPENID_AUTH) return base32(roomId);
  // Element: `Jitsi${randomUppercaseString(1)}${randomLowercaseString(23)}` (26^24 ≈ 2^113).
  return `Jitsi${randomFrom(upper, 1)}${randomFrom(lower, 23)}`;
}

/** Element's wrapper URL (`getLocalJitsiWrapperUrl`), with `confId` in the query as `addJitsiWidget` sets it. */
export function widgetUrl(elementBaseUrl: string, conferenceId: string, auth: typeof OPENID_AUTH | null): string {
  // The $-variables are filled in by Element when it opens the widget, so they are not encoded.
  const parts = [
    "conferenceDomain=$domain",
    "conferenceId=$conferenceId",
    "isAudioOnly=$isAudioOnly",
    "startWithAudioMuted=$startWithAudioMuted",
    "startWithVideoMuted=$startWithVideoMuted",
    "isVideoChannel=$isVideoChannel",
    "displayName=$matrix_display_name",
    "avatarUrl=$matrix_avatar_url",
    "userId=$matrix_user_id",
    "roomId=$matrix_room_id",
    "theme=$theme",
    "roomName=$roomName",
    // Element Web answers PlatformPeg.get().supportsJitsiScreensharing() with true.
    "supportsScreensharing=true",
    "language=$org.matrix.msc2873.client_language",
  ];
  if (auth) parts.push(`auth=${auth}`);
  const url = new URL(`jitsi.html#${parts.join("&")}`, elementBaseUrl.endsWith("/") ? elementBaseUrl : `${elementBaseUrl}/`);
  url.search = "";
  url.searchParams.set("confId", conferenceId);
  return url.href;
}

export interface JitsiWidgetData {
  conferenceId: string;
  roomName: string;
  isAudioOnly: boolean;
  isVideoChannel: boolean;
  domain: string;
  auth?: string;
}

export interface WidgetParams {
  elementBaseUrl: string;
  domain: string;
  conferenceId: string;
  roomName: string;
  auth: typeof OPENID_AUTH | null;
}

/** The content of the `im.vector.modular.widgets` state event, as Element's `setRoomWidget` sends it. */
export function widgetContent(p: WidgetParams): Record<string, unknown> {
  const data: JitsiWidgetData = {
    conferenceId: p.conferenceId,
    roomName: p.roomName,
    isAudioOnly: false,
    isVideoChannel: false,
    domain: p.domain,
    // Element sends `auth: undefined` without membership checks, which JSON leaves out.
    ...(p.auth ? { auth: p.auth } : {}),
  };
  return { type: "jitsi", url: widgetUrl(p.elementBaseUrl, p.conferenceId, p.auth), name: WIDGET_NAME, data };
}

export interface WidgetLayout {
  container: "top" | "right";
  index?: number;
  width?: number;
  height?: number;
}

/** The room's layout with the call pinned first at the top (WidgetLayoutStore's `copyLayoutToRoom` shape); other widgets keep their places. */
export function layoutWithCall(current: Record<string, unknown> | null, widgetId: string): Record<string, unknown> {
  const widgets = { ...(((current?.widgets as Record<string, WidgetLayout> | undefined) ?? {}) as Record<string, WidgetLayout>) };
  for (const [id, layout] of Object.entries(widgets)) {
    if (id !== widgetId && layout?.container === "top" && typeof layout.index === "number") widgets[id] = { ...layout, index: layout.index + 1 };
  }
  widgets[widgetId] = { container: "top", index: 0, width: 100, height: 40 };
  return { ...(current ?? {}), widgets };
}

/** The room's layout without the call's entry. */
export function layoutWithoutCall(current: Record<string, unknown> | null, widgetId: string): Record<string, unknown> {
  const widgets = { ...(((current?.widgets as Record<string, WidgetLayout> | undefined) ?? {}) as Record<string, WidgetLayout>) };
  delete widgets[widgetId];
  return { ...(current ?? {}), widgets };
}

export interface PowerLevels {
  users?: Record<string, number>;
  users_default?: number;
  events?: Record<string, number>;
  state_default?: number;
}

/** A user's level (CS API §"m.room.power_levels": users, else users_default, else 0). */
export function userLevel(pl: PowerLevels | null, userId: string): number {
  if (!pl) return 0;
  const own = pl.users?.[userId];
  return typeof own === "number" ? own : typeof pl.users_default === "number" ? pl.users_default : 0;
}

/** The level a state event of this type needs (events[type], else state_default, else 50; without power levels 0). */
export function stateLevel(pl: PowerLevels | null, type: string): number {
  if (!pl) return 0;
  const own = pl.events?.[type];
  return typeof own === "number" ? own : typeof pl.state_default === "number" ? pl.state_default : 50;
}

export type PermissionProblem = { who: "bot"; type: string; required: number; has: number } | { who: "sender"; type: string; required: number; has: number };

/**
 * Whether a call can be started: Kuvert's bot must be allowed to send the widget and the layout
 * events; the sender must be allowed to add widgets too, unless Kuvert starts the call on the
 * sender's behalf as a clerk or staff member of this organisation (the product's rule: clerks
 * and staff start calls, and Kuvert adds exactly its own Jitsi widget, nothing else).
 */
export function permissionProblems(pl: PowerLevels | null, botUserId: string, sender: string | null, senderManaged: boolean): PermissionProblem[] {
  const problems: PermissionProblem[] = [];
  for (const type of [WIDGET_EVENT, LAYOUT_EVENT]) {
    const required = stateLevel(pl, type);
    const has = userLevel(pl, botUserId);
    if (has < required) problems.push({ who: "bot", type, required, has });
  }
  if (sender && !senderManaged) {
    const required = stateLevel(pl, WIDGET_EVENT);
    const has = userLevel(pl, sender);
    if (has < required) problems.push({ who: "sender", type: WIDGET_EVENT, required, has });
  }
  return problems;
}
