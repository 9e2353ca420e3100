// Which staging store a configuration asks for: documents and circular attachments each have one,
// in the documents' directory (and the circulars' beside it) or under their own key prefix of the
// configured S3 bucket. Retention's orphan sweep opens the documents' store the same way.
import { join } from "node:path";
import { circularStagingDir } from "../circulars/service.ts";
import type { KuvertConfig } from "../config/schema.ts";
import { DirectoryStaging, type Staging } from "./staging.ts";
import { S3Staging } from "./staging-s3.ts";

export type StagingArea = "documents" | "circulars";

/** The store for `area`, not yet initialised (call `init`). */
export function stagingStore(config: KuvertConfig, area: StagingArea): DirectoryStaging | S3Staging {
  const dir = area === "documents" ? config.documents.stagingDir : circularStagingDir(config);
  const s3 = config.documents.stagingS3;
  if (!s3) return new DirectoryStaging(dir);
  // The local copies go beside the scanner's archive spool, on the disk the operator sized for staging.
  return new S3Staging(s3, `${s3.prefix}${area}/`, join(config.documents.stagingDir, `.s3-cache-${area}`));
}

/** The initialised store for `area`. */
export async function openStaging(config: KuvertConfig, area: StagingArea): Promise<Staging> {
  const store = stagingStore(config, area);
  await store.init();
  return store;
}
