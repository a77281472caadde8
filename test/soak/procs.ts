/**
 * The processes a soak run drives, each started and stopped by this run only: the service
 * (`node --import tsx src/main.ts`, as `npm start` runs it) and a Redis server of its own on a
 * port of its own (so "Redis restarted" never touches the machine's shared Redis on 6379).
 * Output goes to a file per process in the run's directory, never into this process's memory.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { until } from '../support/until.ts';

export interface Proc {
  readonly name: string;
  readonly child: ChildProcess;
  readonly exited: Promise<number | null>;
  readonly log: string;
  output(): string;
}

function launch(name: string, cmd: string, args: string[], env: Record<string, string>, dir: string): Proc {
  const log = join(dir, `${name}.log`);
  const fd = openSync(log, 'a');
  const child = spawn(cmd, args, { env, stdio: ['ignore', fd, fd] });
  closeSync(fd);
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code, signal) => resolve(code ?? (signal ? -1 : null))));
  return { name, child, exited, log, output: () => readFileSync(log, 'utf8') };
}

export interface ServiceProc extends Proc {
  readonly url: string;
  readonly port: number;
  health(): Promise<Record<string, any> | null>;
  /** RSS of the process, bytes, from /proc (null when it is gone). */
  rss(): number | null;
  /** V8 heap used, bytes, from /metrics (null when unanswered). */
  heapUsed(): Promise<number | null>;
}

export function startServiceProc(name: string, port: number, env: Record<string, string>, dir: string, secret: string): ServiceProc {
  const p = launch(name, process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', LOG_FORMAT: 'json', PORT: String(port), ...env,
  }, dir);
  const url = `http://127.0.0.1:${port}`;
  return Object.assign(p, {
    url,
    port,
    async health() {
      try {
        const r = await fetch(`${url}/health`, { signal: AbortSignal.timeout(5000) });
        return r.ok ? (await r.json()) as Record<string, any> : null;
      } catch {
        return null;
      }
    },
    rss() {
      try {
        const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${p.child.pid}/status`, 'utf8'));
        return m ? Number(m[1]) * 1024 : null;
      } catch {
        return null;
      }
    },
    async heapUsed() {
      try {
        const r = await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${secret}` }, signal: AbortSignal.timeout(5000) });
        const m = /^n50_nodejs_heap_size_used_bytes (\S+)$/m.exec(await r.text());
        return m ? Number(m[1]) : null;
      } catch {
        return null;
      }
    },
  });
}

/** Stop a process this run started: the signal, then wait for its exit (SIGKILL after `ms`). */
export async function stop(p: Proc, signal: NodeJS.Signals = 'SIGTERM', ms = 20_000): Promise<number | null> {
  if (p.child.exitCode !== null || p.child.signalCode !== null) return p.child.exitCode;
  p.child.kill(signal);
  const t = setTimeout(() => p.child.kill('SIGKILL'), ms);
  try {
    return await p.exited;
  } finally {
    clearTimeout(t);
  }
}

/** A Redis server of this run's own, restartable on the same port. */
export class OwnRedis {
  private proc: Proc | null = null;
  private starts = 0;
  constructor(readonly port: number, private readonly dir: string) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}/0`;
  }

  async start(): Promise<void> {
    this.proc = launch(`redis-${++this.starts}`, 'redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { PATH: process.env.PATH ?? '' }, this.dir);
    await until(`redis-server on ${this.port} to accept connections`, () => /Ready to accept connections/.test(this.proc!.output()), 10_000);
  }

  async stop(): Promise<void> {
    if (this.proc) await stop(this.proc, 'SIGTERM', 5000);
    this.proc = null;
  }
}
