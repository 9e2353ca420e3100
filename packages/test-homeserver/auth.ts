import type { Appservice } from "./appservices.ts";
import type { Core } from "./core.ts";
import { exclusive, forbidden, missingToken, unknownToken } from "./errors.ts";
import type { Req } from "./http.ts";

/** Who is making a request (Synapse's `Requester`). */
export interface Requester {
  userId: string;
  deviceId: string | undefined;
  accessToken: string;
  /** Set for user access tokens; transaction IDs of token holders without a device are scoped by it. */
  tokenId: number | undefined;
  /** Set when the request is made with an appservice's as_token (also when masquerading). */
  appservice: Appservice | undefined;
  isAdmin: boolean;
}

/** CS API §"Using access tokens": `Authorization: Bearer` or the deprecated `access_token` query parameter. */
export function extractToken(req: Req): string | undefined {
  const header = req.raw.headers["authorization"];
  const query = req.query.getAll("access_token");
  if (header !== undefined) {
    if (query.length > 0) throw missingToken("Mixing Authorization headers and access_token query parameters.");
    const parts = header.split(" ");
    if (parts[0] === "Bearer" && parts.length === 2 && parts[1]) return parts[1];
    throw missingToken("Invalid Authorization header.");
  }
  return query[0] || undefined;
}

export function authenticate(core: Core, req: Req): Requester {
  const token = extractToken(req);
  if (token === undefined) throw missingToken();
  const as = core.appservices.byAsToken(token);
  if (as) return appserviceRequester(core, req, as, token);
  const info = core.users.tokens.get(token);
  const account = info ? core.users.get(info.userId) : undefined;
  if (!info || !account || account.deactivated) throw unknownToken();
  return { userId: info.userId, deviceId: info.deviceId, accessToken: token, tokenId: info.id, appservice: undefined, isAdmin: account.admin };
}

export function authenticateOptional(core: Core, req: Req): Requester | undefined {
  return extractToken(req) === undefined ? undefined : authenticate(core, req);
}

/** AS API §"Identity assertion": `?user_id=` within the appservice's namespace, of a registered user. */
function appserviceRequester(core: Core, req: Req, as: Appservice, token: string): Requester {
  const asserted = req.query.get("user_id");
  let userId = as.senderId;
  if (asserted !== null && asserted !== as.senderId) {
    if (!as.isInterestedInUser(asserted)) throw forbidden(`Application service cannot masquerade as this user (${asserted}).`);
    if (!core.users.get(asserted)) throw forbidden(`Application service has not registered this user (${asserted})`);
    userId = asserted;
  }
  // Device masquerading (MSC3202 / MSC4326): the device must exist (Synapse, 1.67 and current: 400 M_EXCLUSIVE).
  const deviceId = req.query.get("device_id") ?? req.query.get("org.matrix.msc3202.device_id") ?? undefined;
  if (deviceId !== undefined && !core.users.devices.get(userId)?.has(deviceId)) {
    throw exclusive(`Application service trying to use a device that doesn't exist ('${deviceId}' for ${userId})`);
  }
  const account = core.users.get(userId);
  return { userId, deviceId, accessToken: token, tokenId: undefined, appservice: as, isAdmin: account?.admin ?? false };
}

export function requireAdmin(core: Core, req: Req): Requester {
  const requester = authenticate(core, req);
  if (!requester.isAdmin) throw forbidden("You are not a server admin");
  return requester;
}

/** The key under which a client transaction ID is remembered (Synapse's HttpTransactionCache). */
export function transactionScope(requester: Requester): string {
  if (requester.appservice) return `appservice|${requester.appservice.id}|${requester.userId}`;
  if (requester.deviceId !== undefined) return `device|${requester.userId}|${requester.deviceId}`;
  return `token|${requester.tokenId ?? requester.accessToken}`;
}

/** The device that a stored event's `unsigned.transaction_id` is echoed to. */
export function deviceKey(requester: Requester): string {
  return transactionScope(requester);
}
