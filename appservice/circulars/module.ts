// Circulars as a Kuvert module: the service and its fan-out workers, `!circular` and the files
// staff post for it in the staff room, the API; retention of finished work, unused staff-room files
// and the local copies a crash left of its staging area.
import express from "express";
import { openStaging, sweepStagingArea } from "../files/staging-store.ts";
import { defineModule, type ModuleContext } from "../module.ts";
import { circularPaths, circularSchemas } from "./openapi.ts";
import { circularRoutes } from "./api.ts";
import { circularCommand, StaffRoomFiles } from "./commands.ts";
import { CircularFanout } from "./fanout.ts";
import { Circulars, circularStagingDir } from "./service.ts";
import { CircularErr } from "./errors.ts";
import { circularsConfig } from "./config.ts";

declare module "../module.ts" {
  interface ModuleServices {
    circulars: Circulars;
  }
}

export const circularsModule = defineModule({
  name: "circulars",
  config: circularsConfig,
  queues: { circular_deliveries: "circular_deliveries" },
  errors: CircularErr,
  openApi: { schemas: () => circularSchemas, paths: () => circularPaths },
  async start(ctx) {
    const { db, homeserver, config } = ctx;
    // Circular attachments wait in a staging area of their own (folder or key prefix), which document retention leaves alone.
    const staging = await openStaging(config, "circulars", circularStagingDir(config));
    const fanout = new CircularFanout(db, homeserver, ctx.scanner, staging, ctx.staffRoom, config);
    const circulars = new Circulars(db, config, staging, () => fanout.wake());
    return {
      service: circulars,
      publicRoutes: [circularRouter(ctx, circulars)],
      roomHandlers: [new StaffRoomFiles(db, config)],
      commands: [circularCommand(db, config, circulars)],
      workers: fanout.workers(),
    };
  },
  // Switched off: the API answers KUVERT_MODULE_DISABLED and `!circular` says so; circulars not
  // yet delivered wait until the module is switched on again.
  whenOff: (ctx) => ({ publicRoutes: [circularRouter(ctx, null)], commands: [circularCommand(ctx.db, ctx.config, null)] }),
  retention: [
    { count: "workItems", run: async (q, cut) => (await q.query("DELETE FROM circular_work WHERE state IN ('done', 'failed') AND run_after < $1", [cut.operational])).rowCount },
    // Files staff posted in the staff room that no circular took.
    { count: "workItems", run: async (q, cut) => (await q.query("DELETE FROM circular_staff_files WHERE circular_id IS NULL AND posted_at < $1", [cut.operational])).rowCount },
    // With S3 staging: local copies of attachments a crash left (the attachments themselves go with their circular's delivery).
    { count: "stagingFiles", when: "after", run: (_q, cut, config) => sweepStagingArea(config, "circulars", circularStagingDir(config), cut.stagingOrphans) },
  ],
});

/** The API under /api/v1 (scope staff or admin); multipart bodies are streamed. */
function circularRouter(ctx: ModuleContext, circulars: Circulars | null): express.Router {
  return express.Router().use("/api/v1", circularRoutes(circulars, ctx.requireScope("staff", "admin"), ctx.config.circulars.maxAttachments));
}
