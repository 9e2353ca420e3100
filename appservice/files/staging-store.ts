// Which staging store a configuration asks for. Each module that takes files in has its own area
// (documents, circular attachments): a directory of its own, or its own key prefix of the
// configured S3 bucket (documents.stagingS3). Retention's sweeps open a module's store the same way.
import { join } from "node:path";
import type { KuvertConfig } from "../config/schema.ts";
import { DirectoryStaging, type Staging } from "./staging.ts";
import { S3Staging } from "./staging-s3.ts";

/** The store of the staging area `area` (a module's name; its directory `dir`), not yet initialised (call `init`). */
export function stagingStore(config: KuvertConfig, area: string, dir: string): DirectoryStaging | S3Staging {
  const s3 = config.documents.stagingS3;
  if (!s3) return new DirectoryStaging(dir);
  // The local copies go beside the scanner's archive spool, on the disk the operator sized for staging.
  return new S3Staging(s3, `${s3.prefix}${area}/`, join(config.documents.stagingDir, `.s3-cache-${area}`));
}

/** The initialised store of the staging area `area`. */
export async function openStaging(config: KuvertConfig, area: string, dir: string): Promise<Staging> {
  const store = stagingStore(config, area, dir);
  await store.init();
  return store;
}

/**
 * Retention's sweep of one staging area: files older than `olderThan` that no waiting work needs
 * (when `needed` is given: it answers for a file's id, unfinished `.part` files are never needed)
 * and, with S3, the local copies a crash left. Returns how many it removed.
 */
export async function sweepStagingArea(config: KuvertConfig, area: string, dir: string, olderThan: Date, needed?: (id: string) => Promise<boolean>): Promise<number> {
  const store = stagingStore(config, area, dir);
  try {
    let count = 0;
    if (needed) {
      const stale: string[] = [];
      for await (const { name, modified } of store.entries()) {
        if (modified >= olderThan) continue;
        if (name.endsWith(".part") || !(await needed(name))) stale.push(name);
      }
      for (const name of stale) await store.remove(name);
      count += stale.length;
    }
    if (store instanceof S3Staging) count += await store.removeStaleCopies(olderThan);
    return count;
  } finally {
    await store.close();
  }
}
