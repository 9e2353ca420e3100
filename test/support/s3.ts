// A real S3-compatible store for one suite: OpenStack Swift (Debian's swift-* packages) as a
// "Swift All In One" on a plain directory — account, container and object servers with one
// replica each, rings built with swift-ring-builder — behind Swift's proxy with its s3api
// middleware (S3's REST API) and tempauth (one user, whose name and key are the S3 access and
// secret keys). tempauth keeps its state in memcached, so one runs beside it. Every process gets a
// free port and is stopped by its PID; the directory is removed on stop.
//
// scripts/setup.sh --tests installs the packages (swift-proxy, swift-object, swift-container,
// swift-account, memcached); where they are missing, `s3Missing()` says which.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CreateBucketCommand, DeleteObjectCommand, ListMultipartUploadsCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { freePort } from "./ports.ts";

const programs = {
  proxy: "/usr/bin/swift-proxy-server",
  object: "/usr/bin/swift-object-server",
  container: "/usr/bin/swift-container-server",
  account: "/usr/bin/swift-account-server",
  ringBuilder: "/usr/bin/swift-ring-builder",
  memcached: "/usr/bin/memcached",
} as const;

export interface S3Store {
  endpoint: string;
  region: string;
  bucket: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** Keys under `prefix` in the bucket (for tests that check what is stored). */
  keys(prefix: string): Promise<string[]>;
  /** Multipart uploads begun under `prefix` and neither completed nor aborted. */
  unfinishedUploads(prefix: string): Promise<string[]>;
  /** Stores `content` under `key` (as a crash could have left it). */
  put(key: string, content: Buffer): Promise<void>;
  stop(): Promise<void>;
}

/** Null when the store can run here; otherwise one line naming the missing programs. */
export function s3Missing(): string | null {
  const missing = Object.values(programs).filter((p) => !existsSync(p));
  return missing.length === 0 ? null : `no S3-compatible store here (missing ${missing.join(", ")}; scripts/setup.sh --tests installs Swift and memcached)`;
}

export async function startS3(): Promise<S3Store> {
  const why = s3Missing();
  if (why) throw new Error(why);
  const dir = mkdtempSync(join(tmpdir(), "kuvert-s3-"));
  const conf = join(dir, "conf");
  const devices = join(dir, "srv");
  mkdirSync(conf);
  mkdirSync(join(devices, "d1"), { recursive: true });
  const children: { name: string; process: ChildProcess; exited: Promise<void> }[] = [];
  const killOnExit = () => {
    for (const c of children) c.process.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  };
  process.once("exit", killOnExit);

  const halt = async () => {
    for (const c of children.splice(0).reverse()) {
      c.process.kill("SIGTERM");
      const timer = setTimeout(() => c.process.kill("SIGKILL"), 5_000);
      await c.exited;
      clearTimeout(timer);
    }
  };
  const run = (name: string, program: string, args: string[]) => {
    const out = openSync(join(dir, `${name}.log`), "a");
    let started: ChildProcess;
    try {
      started = spawn(program, args, { stdio: ["ignore", out, out] });
    } finally {
      closeSync(out);
    }
    started.unref();
    const exited = new Promise<void>((resolve) => {
      started.once("exit", () => resolve());
      started.once("error", () => resolve());
    });
    children.push({ name, process: started, exited });
  };

  try {
    writeFileSync(join(conf, "swift.conf"), ["[swift-hash]", "swift_hash_path_suffix = kuvert-test", "swift_hash_path_prefix = kuvert-test", "[storage-policy:0]", "name = Policy-0", "default = yes", ""].join("\n"));
    const memcachePort = await freePort();
    run("memcached", programs.memcached, ["-l", "127.0.0.1", "-p", String(memcachePort), "-U", "0", "-m", "16", ...(process.getuid?.() === 0 ? ["-u", "root"] : [])]);
    for (const kind of ["account", "container", "object"] as const) {
      const port = await freePort();
      // A ring of one device, one replica, 2^6 partitions: the smallest ring Swift builds.
      const builder = join(conf, `${kind}.builder`);
      for (const args of [["create", "6", "1", "1"], ["add", `r1z1-127.0.0.1:${port}/d1`, "1"], ["rebalance"]]) {
        const r = spawnSync(programs.ringBuilder, [builder, ...args], { encoding: "utf8" });
        // rebalance exits 1 with a warning about the single device, and still writes the ring.
        if (r.status !== 0 && !(args[0] === "rebalance" && existsSync(join(conf, `${kind}.ring.gz`)))) throw new Error(`swift-ring-builder ${args.join(" ")}: ${r.stdout}${r.stderr}`);
      }
      const file = join(conf, `${kind}-server.conf`);
      writeFileSync(
        file,
        [
          "[DEFAULT]",
          "bind_ip = 127.0.0.1",
          `bind_port = ${port}`,
          "workers = 0",
          `devices = ${devices}`,
          "mount_check = false",
          `swift_dir = ${conf}`,
          "log_level = WARNING",
          "[pipeline:main]",
          `pipeline = ${kind}-server`,
          `[app:${kind}-server]`,
          `use = egg:swift#${kind}`,
          `[${kind}-replicator]`,
          `[${kind}-updater]`,
          `[${kind}-auditor]`,
          "",
        ].join("\n"),
      );
      run(kind, programs[kind], [file]);
    }
    const port = await freePort();
    const accessKeyId = "kuvert:tester";
    const secretAccessKey = "kuvert-test-secret";
    const proxyConf = join(conf, "proxy-server.conf");
    writeFileSync(
      proxyConf,
      [
        "[DEFAULT]",
        "bind_ip = 127.0.0.1",
        `bind_port = ${port}`,
        "workers = 0",
        `swift_dir = ${conf}`,
        "log_level = WARNING",
        "[pipeline:main]",
        // slo carries S3 multipart uploads; copy and dlo are what s3api expects before it.
        "pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats s3api tempauth copy slo dlo proxy-logging proxy-server",
        "[app:proxy-server]",
        "use = egg:swift#proxy",
        "account_autocreate = true",
        ...["catch_errors", "gatekeeper", "healthcheck", "proxy_logging", "listing_formats", "s3api", "copy", "slo", "dlo"].flatMap((m) => [`[filter:${m.replace("_logging", "-logging")}]`, `use = egg:swift#${m}`]),
        "[filter:cache]",
        "use = egg:swift#memcache",
        `memcache_servers = 127.0.0.1:${memcachePort}`,
        "[filter:tempauth]",
        "use = egg:swift#tempauth",
        `user_kuvert_tester = ${secretAccessKey} .admin`,
        "",
      ].join("\n"),
    );
    run("proxy", programs.proxy, [proxyConf]);

    const endpoint = `http://127.0.0.1:${port}`;
    const region = "us-east-1";
    const bucket = "kuvert-test";
    const client = new S3Client({ endpoint, region, forcePathStyle: true, credentials: { accessKeyId, secretAccessKey }, maxAttempts: 1 });
    const deadline = Date.now() + 60_000;
    // Ready when the bucket can be made and an object stored and deleted in it: then the proxy,
    // tempauth, memcached and the account, container and object servers all answer.
    let made = false;
    for (;;) {
      try {
        if (!made) await client.send(new CreateBucketCommand({ Bucket: bucket }));
        made = true;
        await client.send(new PutObjectCommand({ Bucket: bucket, Key: "ready", Body: "ready" }));
        await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: "ready" }));
        break;
      } catch (err) {
        if (Date.now() > deadline) {
          const logs = children.map((c) => `${c.name}: ${readFileSync(join(dir, `${c.name}.log`), "utf8").slice(-800)}`).join("\n");
          throw new Error(`the S3-compatible store did not start (${String(err)}):\n${logs}`, { cause: err });
        }
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    return {
      endpoint,
      region,
      bucket,
      accessKeyId,
      secretAccessKey,
      async keys(prefix) {
        const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
        return (page.Contents ?? []).flatMap((o) => (o.Key ? [o.Key] : []));
      },
      async unfinishedUploads(prefix) {
        const page = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: prefix }));
        return (page.Uploads ?? []).flatMap((u) => (u.Key ? [u.Key] : []));
      },
      async put(key, content) {
        await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: content }));
      },
      async stop() {
        client.destroy();
        try {
          await halt();
        } finally {
          process.removeListener("exit", killOnExit);
          rmSync(dir, { recursive: true, force: true });
        }
      },
    };
  } catch (err) {
    await halt();
    process.removeListener("exit", killOnExit);
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}
