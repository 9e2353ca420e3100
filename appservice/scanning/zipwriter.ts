// A small ZIP writer for what Kuvert builds itself in memory: the scanner's canaries (a few
// hundred bytes each). Stored or deflated entries, optionally encrypted with the traditional PKWARE
// scheme ("ZipCrypto", APPNOTE.TXT 6.1), which is what `zip -P` writes. Real archives (batches,
// anything large) are written and read with yazl and yauzl, streaming.
import { randomBytes } from "node:crypto";
import { crc32, deflateRawSync } from "node:zlib";

export interface ZipMember {
  name: string;
  content: Buffer;
}

const crcTable = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** The traditional PKWARE stream cipher, keyed with `password`. */
class ZipCrypto {
  #k0 = 0x12345678;
  #k1 = 0x23456789;
  #k2 = 0x34567890;

  constructor(password: Buffer) {
    for (const byte of password) this.#update(byte);
  }

  #update(byte: number): void {
    this.#k0 = (crcTable[(this.#k0 ^ byte) & 0xff]! ^ (this.#k0 >>> 8)) >>> 0;
    this.#k1 = (Math.imul((this.#k1 + (this.#k0 & 0xff)) >>> 0, 134775813) + 1) >>> 0;
    this.#k2 = (crcTable[(this.#k2 ^ (this.#k1 >>> 24)) & 0xff]! ^ (this.#k2 >>> 8)) >>> 0;
  }

  encrypt(plain: Buffer): Buffer {
    const out = Buffer.alloc(plain.length);
    for (let i = 0; i < plain.length; i++) {
      const temp = (this.#k2 | 2) & 0xffff;
      const key = (Math.imul(temp, temp ^ 1) >>> 8) & 0xff;
      out[i] = plain[i]! ^ key;
      this.#update(plain[i]!);
    }
    return out;
  }
}

const dosDate = ((2024 - 1980) << 9) | (1 << 5) | 1;

/**
 * A ZIP archive of `members`, stored, or deflated with `deflate` (so that their bytes do not
 * appear as they are in the archive); with `password`, every member is encrypted (ZipCrypto).
 */
export function smallZip(members: ZipMember[], opts: { password?: string; deflate?: boolean } = {}): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const member of members) {
    const name = Buffer.from(member.name, "utf8");
    const crc = crc32(member.content);
    const method = opts.deflate ? 8 : 0;
    let data = opts.deflate ? deflateRawSync(member.content) : member.content;
    let flags = 0x0800; // UTF-8 name
    if (opts.password !== undefined) {
      flags |= 0x0001; // encrypted
      const cipher = new ZipCrypto(Buffer.from(opts.password, "utf8"));
      // The 12-byte encryption header: random, its last byte the CRC's high byte (a password check).
      const header = randomBytes(12);
      header[11] = crc >>> 24;
      data = Buffer.concat([cipher.encrypt(header), cipher.encrypt(data)]);
    }
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(flags, 6);
    local.writeUInt16LE(method, 8);
    local.writeUInt16LE(0, 10);
    local.writeUInt16LE(dosDate, 12);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(data.length, 18);
    local.writeUInt32LE(member.content.length, 22);
    local.writeUInt16LE(name.length, 26);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(20, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(flags, 8);
    central.writeUInt16LE(method, 10);
    central.writeUInt16LE(0, 12);
    central.writeUInt16LE(dosDate, 14);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(data.length, 20);
    central.writeUInt32LE(member.content.length, 24);
    central.writeUInt16LE(name.length, 28);
    central.writeUInt32LE(offset, 42);
    locals.push(local, name, data);
    centrals.push(central, name);
    offset += local.length + name.length + data.length;
  }
  const centralDirectory = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(members.length, 8);
  end.writeUInt16LE(members.length, 10);
  end.writeUInt32LE(centralDirectory.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, centralDirectory, end]);
}

/** `content` wrapped in `levels` ZIP archives, one inside the next, each level deflated. */
export function nestedZip(content: Buffer, name: string, levels: number): Buffer {
  let inner = content;
  let innerName = name;
  for (let level = 1; level <= levels; level++) {
    inner = smallZip([{ name: innerName, content: inner }], { deflate: true });
    innerName = `level-${level}.zip`;
  }
  return inner;
}
