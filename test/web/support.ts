/**
 * Browser tests' rig: the service as `npm start` runs it (a child process of `src/main.ts` with the
 * embedded defaults, which builds the dashboard first when stale), a TCP proxy in front of it that
 * a test can cut, and Debian's Chromium driven by playwright-core.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser } from 'playwright-core';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const ARTIFACTS = join(ROOT, 'test-artifacts', 'web');

export interface App {
  base: string;
  port: number;
  devKey: string;
  /** Every log line the service printed (JSON). */
  lines: Record<string, unknown>[];
  stop(): Promise<void>;
}

/** Start `src/main.ts` as `npm start` does, with `env` on top of the embedded defaults. */
export async function startApp(env: Record<string, string> = {}): Promise<App> {
  const dataDir = mkdtempSync(join(tmpdir(), 'web-e2e-'));
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    cwd: ROOT,
    env: { ...process.env, PORT: '0', DATA_DIR: dataDir, LOG_FORMAT: 'json', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: Record<string, unknown>[] = [];
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
  const up = await new Promise<{ base: string; devKey: string }>((resolve, reject) => {
    let buf = '';
    const t = setTimeout(() => reject(new Error(`the service did not start in 120 s; stderr: ${stderr.slice(-2000)}`)), 120_000);
    child.on('exit', (code) => reject(new Error(`the service exited with ${code}; stderr: ${stderr.slice(-2000)}; log: ${JSON.stringify(lines.slice(-5))}`)));
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        let o: Record<string, unknown>;
        try {
          o = JSON.parse(line) as Record<string, unknown>;
        } catch {
          continue;
        }
        lines.push(o);
        const m = /service up on (http:\/\/[^:]+:\d+)/.exec(String(o.msg ?? ''));
        if (m && typeof o.devKey === 'string') {
          clearTimeout(t);
          resolve({ base: m[1], devKey: o.devKey });
        }
      }
    });
  });
  return {
    ...up,
    port: Number(new URL(up.base).port),
    lines,
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** A TCP proxy to `port` whose connections a test can cut (and refuse for a while), as a network drop would. */
export interface Proxy {
  port: number;
  /** Destroy every open connection and refuse new ones until `restore()`. */
  cut(): void;
  restore(): void;
  close(): Promise<void>;
}

export async function startProxy(port: number): Promise<Proxy> {
  const open = new Set<net.Socket>();
  let refusing = false;
  const server = net.createServer((client) => {
    if (refusing) {
      client.destroy();
      return;
    }
    const upstream = net.connect(port, '127.0.0.1');
    open.add(client);
    open.add(upstream);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      open.delete(client);
      open.delete(upstream);
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    cut() {
      refusing = true;
      for (const s of open) s.destroy();
      open.clear();
    },
    restore() {
      refusing = false;
    },
    close: () => new Promise<void>((r) => {
      for (const s of open) s.destroy();
      server.close(() => r());
    }),
  };
}

export async function launchBrowser(): Promise<Browser> {
  mkdirSync(ARTIFACTS, { recursive: true });
  return chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: ['--no-sandbox'] });
}
