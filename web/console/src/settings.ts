// What the console needs to know about its Kuvert: the homeserver to sign in at.
export interface Settings {
  homeserverUrl: string;
  serverName: string;
}

export async function loadSettings(): Promise<Settings> {
  const res = await fetch("/console/settings.json", { credentials: "same-origin" });
  if (!res.ok) throw new Error(`settings: HTTP ${res.status}`);
  return (await res.json()) as Settings;
}
