// The homeserver's media repository: what was uploaded, by whom, and whether it is quarantined.
export interface MediaItem {
  serverName: string;
  mediaId: string;
  contentType: string;
  filename: string | undefined;
  data: Buffer | undefined;
  uploader: string;
  createdTs: number;
  quarantined: boolean;
  /** Uploaded while authenticated media was enforced ("after the freeze"): not served by the legacy endpoints. */
  authenticatedOnly: boolean;
}

export class MediaStore {
  readonly items = new Map<string, MediaItem>();

  key(serverName: string, mediaId: string): string {
    return `${serverName}/${mediaId}`;
  }

  get(serverName: string, mediaId: string): MediaItem | undefined {
    return this.items.get(this.key(serverName, mediaId));
  }

  add(item: MediaItem): void {
    this.items.set(this.key(item.serverName, item.mediaId), item);
  }
}
