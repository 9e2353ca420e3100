// What the console needs to know about its Kuvert: the homeserver to sign in at, the language
// to fall back on when the browser prefers none the console speaks, and which Kuvert it is.
export interface Settings {
  homeserverUrl: string;
  serverName: string;
  language?: "de" | "en";
  /** Kuvert's program version, shown in the footer. */
  version: string;
}

export async function loadSettings(): Promise<Settings> {
  const res = await fetch("/console/settings.json", { credentials: "same-origin" });
  if (!res.ok) throw new Error(`settings: HTTP ${res.status}`);
  return (await res.json()) as Settings;
}
