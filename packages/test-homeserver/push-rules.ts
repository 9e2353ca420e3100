import type { JsonObject } from "./types.ts";

const sound = { set_tweak: "sound", value: "default" };
const highlight = { set_tweak: "highlight" };
const noHighlight = { set_tweak: "highlight", value: false };

/** A subset of Synapse's base rules (CS API §"Push Rules"): enough for clients to evaluate notifications. */
export function defaultPushRules(userId: string): JsonObject {
  const localpart = userId.slice(1, userId.indexOf(":"));
  return {
    global: {
      override: [
        { rule_id: ".m.rule.master", default: true, enabled: false, conditions: [], actions: [] },
        {
          rule_id: ".m.rule.suppress_notices",
          default: true,
          enabled: true,
          conditions: [{ kind: "event_match", key: "content.msgtype", pattern: "m.notice" }],
          actions: [],
        },
        {
          rule_id: ".m.rule.invite_for_me",
          default: true,
          enabled: true,
          conditions: [
            { kind: "event_match", key: "type", pattern: "m.room.member" },
            { kind: "event_match", key: "content.membership", pattern: "invite" },
            { kind: "event_match", key: "state_key", pattern: userId },
          ],
          actions: ["notify", sound, noHighlight],
        },
        {
          rule_id: ".m.rule.member_event",
          default: true,
          enabled: true,
          conditions: [{ kind: "event_match", key: "type", pattern: "m.room.member" }],
          actions: [],
        },
        {
          rule_id: ".m.rule.is_user_mention",
          default: true,
          enabled: true,
          conditions: [{ kind: "event_property_contains", key: "content.m\\.mentions.user_ids", value: userId }],
          actions: ["notify", sound, highlight],
        },
      ],
      content: [
        {
          rule_id: ".m.rule.contains_user_name",
          default: true,
          enabled: true,
          pattern: localpart,
          actions: ["notify", sound, highlight],
        },
      ],
      room: [],
      sender: [],
      underride: [
        {
          rule_id: ".m.rule.room_one_to_one",
          default: true,
          enabled: true,
          conditions: [
            { kind: "room_member_count", is: "2" },
            { kind: "event_match", key: "type", pattern: "m.room.message" },
          ],
          actions: ["notify", sound, noHighlight],
        },
        {
          rule_id: ".m.rule.message",
          default: true,
          enabled: true,
          conditions: [{ kind: "event_match", key: "type", pattern: "m.room.message" }],
          actions: ["notify", noHighlight],
        },
        {
          rule_id: ".m.rule.encrypted",
          default: true,
          enabled: true,
          conditions: [{ kind: "event_match", key: "type", pattern: "m.room.encrypted" }],
          actions: ["notify", noHighlight],
        },
      ],
    },
  };
}
