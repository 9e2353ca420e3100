// What a console page is; pages/ holds one file per page, pages.ts lists them.
import type { ComponentType } from "preact";
import type { Scope } from "./api.ts";
import type { TextKey } from "./i18n.ts";

export interface Page {
  /** The hash route: #/<path>. */
  path: string;
  title: TextKey;
  /** Shown to sessions with any of these scopes (the server checks again on every call). */
  scopes: Scope[];
  component: ComponentType;
}
