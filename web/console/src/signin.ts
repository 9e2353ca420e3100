// Signing in: the browser logs in to the homeserver with matrix-js-sdk, asks it for an OpenID
// token, hands that to Kuvert (for a console session, or on the call link page to join a
// call), and logs the Matrix device out again. Loaded only when someone signs in: matrix-js-sdk
// is most of the console's code.
import { createClient, type IOpenIDToken } from "matrix-js-sdk";
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

/**
 * Whether the homeserver offers single sign-on, and the link that starts it. The homeserver
 * sends the browser back to `back` (this page by default) with a login token added.
 */
export async function ssoLink(settings: Settings, back = `${location.origin}${location.pathname}`): Promise<string | null> {
  const client = createClient({ baseUrl: settings.homeserverUrl });
  try {
    const { flows } = await client.loginFlows();
    if (!flows.some((f) => f.type === "m.login.sso")) return null;
    return client.getSsoLoginUrl(back, "sso");
  } catch {
    return null;
  }
}

function identifierFor(user: string): { type: "m.id.user"; user: string } {
  return { type: "m.id.user", user: user.trim() };
}

export interface MatrixLogin {
  access_token: string;
  user_id: string;
  device_id: string;
}

/** Asks the homeserver for an OpenID token, lets `use` hand it to Kuvert, and logs the Matrix device out in any case. */
export async function withOpenIdToken<T>(settings: Settings, login: MatrixLogin, use: (openid: IOpenIDToken) => Promise<T>): Promise<T> {
  const client = createClient({ baseUrl: settings.homeserverUrl, accessToken: login.access_token, userId: login.user_id, deviceId: login.device_id });
  try {
    return await use(await client.getOpenIdToken());
  } finally {
    // The Matrix login was only needed for the OpenID token.
    await client.logout(true).catch(() => undefined);
  }
}

export async function loginWithPassword(settings: Settings, user: string, password: string, deviceName = "Kuvert-Konsole"): Promise<MatrixLogin> {
  const client = createClient({ baseUrl: settings.homeserverUrl });
  return client.loginRequest({ type: "m.login.password", identifier: identifierFor(user), password, initial_device_display_name: deviceName });
}

export async function loginWithToken(settings: Settings, token: string, deviceName = "Kuvert-Konsole"): Promise<MatrixLogin> {
  const client = createClient({ baseUrl: settings.homeserverUrl });
  return client.loginRequest({ type: "m.login.token", token, initial_device_display_name: deviceName });
}

/** A console session for the OpenID token of this login. */
async function exchange(settings: Settings, login: MatrixLogin): Promise<Session> {
  try {
    return await withOpenIdToken(settings, login, async (openid) => (await api<{ session: Session }>("POST", "/api/v1/session", openid)).session);
  } catch (err) {
    if (err instanceof ApiError && err.errcode === "KUVERT_NOT_STAFF") throw new NotStaff(login.user_id);
    throw err;
  }
}

export async function signInWithPassword(settings: Settings, user: string, password: string): Promise<Session> {
  return exchange(settings, await loginWithPassword(settings, user, password));
}

export async function signInWithLoginToken(settings: Settings, token: string): Promise<Session> {
  return exchange(settings, await loginWithToken(settings, token));
}
