// The whole configuration schema: the core's sections (schema.ts) and every listed module's,
// switches under `modules` in module order, sections after the core's. What load.ts validates,
// sample.ts documents and the environment sets.
import { z } from "zod";
import { moduleEnabled } from "../module.ts";
import { modules } from "../modules.ts";
import { coreConfigSchema, coreEnvironmentKeys, type KuvertConfig, type ModuleConfig } from "./schema.ts";

function compose(): { schema: z.ZodType<KuvertConfig>; environment: Readonly<Record<string, readonly string[]>> } {
  const switches: Record<string, z.ZodType> = {};
  const sections: Record<string, z.ZodType> = {};
  const environment: Record<string, readonly string[]> = { ...coreEnvironmentKeys };
  const coreSwitches = coreConfigSchema.shape.modules.unwrap().shape;
  for (const module of modules) {
    const config: ModuleConfig | undefined = module.config;
    if (!config) continue;
    if (config.switch !== undefined) {
      if (module.name in coreSwitches) throw new Error(`The module ${module.name}'s switch modules.${module.name} is one of the core's`);
      switches[module.name] = z.boolean().default(true).describe(config.switch);
    }
    if (config.section) {
      if (module.name in coreConfigSchema.shape) throw new Error(`The module ${module.name}'s section ${module.name} is one of the core's`);
      sections[module.name] = config.section;
    }
    for (const [variable, path] of Object.entries(config.environment ?? {})) {
      if (variable in environment) throw new Error(`The environment variable ${variable} is declared twice`);
      environment[variable] = [module.name, ...path];
    }
  }
  const modulesSection = coreConfigSchema.shape.modules;
  const schema = coreConfigSchema.extend({
    modules: modulesSection
      .unwrap()
      .extend(switches)
      .strict()
      .prefault({})
      .describe(modulesSection.description ?? ""),
    ...sections,
  });
  const checks = modules.flatMap((m) => (m.config?.check ? [m.config.check] : []));
  const checked = schema.superRefine((config, ctx) => {
    for (const check of checks) for (const problem of check(config as unknown as KuvertConfig)) ctx.addIssue({ code: "custom", path: problem.path, message: problem.message });
  });
  // The modules' sections and switches are typed (ModuleSections, ModuleSwitches) by the config.ts files that give them here.
  return { schema: checked as unknown as z.ZodType<KuvertConfig>, environment };
}

const composed = compose();

/** The configuration schema of this Kuvert, with its modules. */
export const configSchema = composed.schema;

/** Environment variables that set secrets (and the database URL) without writing them into the file, with the key each sets. */
export const environmentKeys = composed.environment;

/** The keys the modules that the configuration switches on add to the application service registration. */
export function registrationExtras(config: KuvertConfig): Record<string, unknown> {
  return Object.assign({}, ...modules.filter((m) => moduleEnabled(m, config)).map((m) => m.config?.registration?.(config) ?? {})) as Record<string, unknown>;
}
