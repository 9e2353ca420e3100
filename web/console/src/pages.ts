// The console's pages. Adding a page: one file in pages/ exporting a Page, and one entry here.
import type { Page } from "./page.ts";
import { organisationsPage } from "./pages/organisations.tsx";
import { documentsPage } from "./pages/documents.tsx";
import { auditPage } from "./pages/audit.tsx";
import { statusPage } from "./pages/status.tsx";
import { callsPage } from "./pages/calls.tsx";
import { circularsPage } from "./pages/circulars.tsx";

export const pages: Page[] = [organisationsPage, documentsPage, circularsPage, callsPage, auditPage, statusPage];
