// Kuvert's modules, in the order they start, mount their routes, see room events and list their
// commands. A new domain is its folder (with a module.ts and its migrations) plus its entry here:
// the import and its place in the list.
import { accountsModule } from "./accounts/module.ts";
import { callsModule } from "./calls/module.ts";
import { circularsModule } from "./circulars/module.ts";
import { consoleModule } from "./console/module.ts";
import { documentsModule } from "./documents/module.ts";
import { e2eeModule } from "./e2ee/module.ts";
import type { KuvertModule } from "./module.ts";

export const modules: readonly KuvertModule[] = [consoleModule, accountsModule, e2eeModule, circularsModule, callsModule, documentsModule];
