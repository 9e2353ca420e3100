// Signing in: the browser logs in to the homeserver with matrix-js-sdk, asks it for an OpenID
// token, hands that to Kuvert for a session, and logs the Matrix device out again. Loaded only
// when someone signs in: matrix-js-sdk is most of the console's code.
import { createClient } from "matrix-js-sdk";
import { api, ApiError, type Session } from "./api.ts";

/** Kuvert refused the account: it holds no role (a clerk, for example). */
export class NotStaff extends Error {
  readonly userId: string;
  constructor(userId: string) {
    super(`${userId} holds no role in Kuvert`);
    this.name = "NotStaff";
    this.userId = userId;
  }
}

import type { Settings } from "./settings.ts";

/** Whether the homeserver offers single sign-on, and the link that starts it. */
export async function ssoLink(settings: Settings): Promise<string | null> {
  const client = createClient({ baseUrl: settings.homeserverUrl });
  try {
    const { flows } = await client.loginFlows();
    if (!flows.some((f) => f.type === "m.login.sso")) return null;
    const back = `${location.origin}${location.pathname}`;
    return client.getSsoLoginUrl(back, "sso");
  } catch {
    return null;
  }
}

function identifierFor(user: string): { type: "m.id.user"; user: string } {
  return { type: "m.id.user", user: user.trim() };
}

async function exchange(settings: Settings, login: { access_token: string; user_id: string; device_id: string }): Promise<Session> {
  const client = createClient({ baseUrl: settings.homeserverUrl, accessToken: login.access_token, userId: login.user_id, deviceId: login.device_id });
  try {
    const openid = await client.getOpenIdToken();
    const res = await api<{ session: Session }>("POST", "/api/v1/session", openid);
    return res.session;
  } catch (err) {
    if (err instanceof ApiError && err.errcode === "KUVERT_NOT_STAFF") throw new NotStaff(login.user_id);
    throw err;
  } finally {
    // The Matrix login was only needed for the OpenID token.
    await client.logout(true).catch(() => undefined);
  }
}

export async function signInWithPassword(settings: Settings, user: string, password: string): Promise<Session> {
  const client = createClient({ baseUrl: settings.homeserverUrl });
  const login = await client.loginRequest({ type: "m.login.password", identifier: identifierFor(user), password, initial_device_display_name: "Kuvert-Konsole" });
  return exchange(settings, login);
}

export async function signInWithLoginToken(settings: Settings, token: string): Promise<Session> {
  const client = createClient({ baseUrl: settings.homeserverUrl });
  const login = await client.loginRequest({ type: "m.login.token", token, initial_device_display_name: "Kuvert-Konsole" });
  return exchange(settings, login);
}
