// A throwaway PostgreSQL cluster for the tests: initdb into a temporary directory, start
// on a free port, stop and delete afterwards. As root, it runs as the postgres user
// (initdb refuses root).
import { execFileSync, spawnSync } from "node:child_process";
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { freePort } from "./ports.ts";

function postgresBin(name: string): string {
  const base = "/usr/lib/postgresql";
  if (existsSync(base)) {
    const versions = readdirSync(base).sort((a, b) => Number(b) - Number(a));
    for (const v of versions) {
      const candidate = join(base, v, "bin", name);
      if (existsSync(candidate)) return candidate;
    }
  }
  return name;
}

function run(cmd: string, args: string[], asPostgres: boolean): void {
  const [file, argv] = asPostgres ? ["runuser", ["-u", "postgres", "--", cmd, ...args]] : [cmd, args];
  const result = spawnSync(file, argv, { encoding: "utf8" });
  if (result.status !== 0) throw new Error(`${cmd} failed (${result.status}): ${result.stderr || result.stdout}`);
}

export interface PostgresCluster {
  /** Superuser URL of the cluster's postgres database. */
  url: string;
  port: number;
  dir: string;
  stop(): void;
  /** Stops the server, keeping its files (to test what happens when the database goes away). */
  pause(): void;
  resume(): void;
}

export async function startPostgres(): Promise<PostgresCluster> {
  const asPostgres = process.getuid?.() === 0;
  const dir = mkdtempSync(join(tmpdir(), "kuvert-pg-"));
  if (asPostgres) {
    const uid = Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8" }).trim());
    const gid = Number(execFileSync("id", ["-g", "postgres"], { encoding: "utf8" }).trim());
    chownSync(dir, uid, gid);
  }
  const data = join(dir, "data");
  run(postgresBin("initdb"), ["-D", data, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync", "--locale=C"], asPostgres);
  const port = await freePort();
  const options = `-c listen_addresses=127.0.0.1 -p ${port} -k ${dir} -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300`;
  const pgctl = postgresBin("pg_ctl");
  const start = () => run(pgctl, ["-D", data, "-o", options, "-l", join(dir, "server.log"), "-w", "-t", "60", "start"], asPostgres);
  start();
  const stop = (mode: string) => run(pgctl, ["-D", data, "-m", mode, "-w", "stop"], asPostgres);
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    dir,
    stop() {
      try {
        stop("immediate");
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
    pause: () => stop("fast"),
    resume: start,
  };
}

/** Creates a fresh database in the cluster and answers its URL. */
export async function createDatabase(clusterUrl: string, name: string): Promise<string> {
  const client = new pg.Client({ connectionString: clusterUrl });
  await client.connect();
  try {
    await client.query(`CREATE DATABASE "${name}"`);
  } finally {
    await client.end();
  }
  const url = new URL(clusterUrl);
  url.pathname = `/${name}`;
  return url.toString();
}
