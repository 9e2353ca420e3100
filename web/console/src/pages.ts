// The console's pages. Adding a page: one file in pages/ exporting a Page, and one entry here.
import type { ComponentType } from "preact";
import type { Scope } from "./api.ts";
import type { TextKey } from "./i18n.ts";
import { organisationsPage } from "./pages/organisations.tsx";
import { documentsPage } from "./pages/documents.tsx";
import { auditPage } from "./pages/audit.tsx";
import { statusPage } from "./pages/status.tsx";
import { callsPage } from "./pages/calls.tsx";
import { circularsPage } from "./pages/circulars.tsx";

export interface Page {
  /** The hash route: #/<path>. */
  path: string;
  title: TextKey;
  /** Shown to sessions with any of these scopes (the server checks again on every call). */
  scopes: Scope[];
  component: ComponentType;
}

export const pages: Page[] = [organisationsPage, documentsPage, circularsPage, callsPage, auditPage, statusPage];
