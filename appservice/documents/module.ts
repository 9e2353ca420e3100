// Documents as a Kuvert module: the intake (drop API, drop folder, bulk batches), the pipeline
// that scans and delivers, inbound scanning of files posted in organisation rooms, the upload
// check the homeserver asks before storing an upload, `kuvert batch …` and `kuvert document …`;
// retention of finished documents, batches and stale staging files; the documents' part of a
// data-subject report and erasure.
import express from "express";
import { logger } from "../log.ts";
import { notice } from "../i18n.ts";
import { defineModule, type ModuleContext } from "../module.ts";
import { findOrganisation } from "../organisations/store.ts";
import { Leadership } from "../workers/leader.ts";
import { documentRoutes } from "./api.ts";
import { Batches } from "./batch.ts";
import { documentCommands } from "./cli.ts";
import { DropFolder } from "./folder.ts";
import { InboundFiles } from "./inbound.ts";
import { DocumentIntake } from "./intake.ts";
// Registers the documents' metrics with Kuvert's registry.
import "./metrics.ts";
import { documentPaths, documentSchemas } from "./openapi.ts";
import { IntakePacer } from "./pacing.ts";
import { DocumentPipeline } from "./pipeline.ts";
import { Prescans } from "./prescan.ts";
import { documentRetention } from "./retention.ts";
import * as store from "./store.ts";
import { documentsSubject } from "./subject.ts";
import { openStaging } from "../files/staging-store.ts";
import { documentTexts } from "./texts.ts";
import { uploadCheckRoutes } from "./upload-check.ts";
import { DocumentErr } from "./errors.ts";

const log = logger("documents");

/** The documents' public service: where documents come in. */
export interface Documents {
  intake: DocumentIntake;
  batches: Batches;
  /** Read by the process that holds the drop folder's lease, when documents.dropFolder.enabled. */
  dropFolder: DropFolder;
}

declare module "../module.ts" {
  interface ModuleServices {
    documents: Documents;
  }
}

/** The drop folder is read by one process at a time: the holder of its lease, taken over when that process dies. */
function dropFolderLease(ctx: ModuleContext, dropFolder: DropFolder): { start(): Promise<void>; stop(): Promise<void> } {
  let leader: Leadership | undefined;
  let turn: Promise<void> = Promise.resolve();
  return {
    async start() {
      if (!ctx.config.documents.dropFolder.enabled) return;
      leader = new Leadership(ctx.db, "drop-folder", {
        onChange: (held) => {
          turn = turn.then(() => (held ? dropFolder.start() : dropFolder.stop())).catch((err: unknown) => log.error({ err }, "the drop folder could not be started or stopped"));
        },
      });
      await leader.start();
      await turn;
    },
    async stop() {
      await leader?.stop();
      await turn;
      await dropFolder.stop();
    },
  };
}

export const documentsModule = defineModule({
  name: "documents",
  // Always loaded: documents are what Kuvert is for. Batches (modules.batches), inbound scanning
  // (modules.inboundScanning) and the drop folder (documents.dropFolder.enabled) switch parts of it.
  enabled: () => true,
  queues: { documents: "document_work", batches: "batch_work" },
  errors: DocumentErr,
  openApi: { schemas: () => documentSchemas, paths: () => documentPaths },
  retention: documentRetention,
  subject: documentsSubject,
  cli: documentCommands,
  async start(ctx) {
    const { db, homeserver, config, scanner, staffRoom } = ctx;
    const staging = await openStaging(config, "documents", config.documents.stagingDir);
    // The scan while receiving judges the whole file; the scanning policy settles it at intake when that
    // is all the file needs (no archive to walk), otherwise the pipeline applies the policy after it.
    const prescans = new Prescans(scanner.clamd, scanner);
    const pipeline = new DocumentPipeline(db, homeserver, scanner, staging, staffRoom, config, prescans);
    const pacer = new IntakePacer(() => store.readyWork(db), { backlog: config.documents.intakeBacklog });
    const documentWorker = pipeline.worker(() => pacer.finished());
    const intake = new DocumentIntake(db, staging, config, () => documentWorker.wake(), prescans, pacer);
    const batches: Batches = new Batches(db, staging, intake, config, () => batchWorker.wake());
    const batchWorker = batches.worker();
    const dropFolder = new DropFolder(config, intake, staffRoom, async (id) => (await findOrganisation(db, id)) !== null);
    const lease = dropFolderLease(ctx, dropFolder);
    // With inbound scanning switched off, a posted file gets a note instead of a check.
    const sayNotChecked = async (roomId: string, eventId: string) => {
      await homeserver.send(roomId, "m.room.message", notice({ body: documentTexts(config.organisations.language).notChecked }), `not-checked:${eventId}`);
    };
    return {
      service: { intake, batches, dropFolder },
      // Bodies are streamed, never parsed into memory; drop or admin tokens (or a console session).
      publicRoutes: [express.Router().use("/api/v1", documentRoutes(db, intake, batches, ctx.requireScope("drop", "admin"), config.modules.batches))],
      appserviceRoutes: [uploadCheckRoutes({ token: config.appservice.uploadCheckToken, scanner, db, maxStreamBytes: config.scanning.maxStreamBytes })],
      roomHandlers: [new InboundFiles(db, () => documentWorker.wake(), config.modules.inboundScanning ? undefined : sayNotChecked)],
      workers: [documentWorker, batchWorker],
      start: lease.start,
      stop: lease.stop,
    };
  },
});
