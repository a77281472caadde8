/**
 * The child processes a multi-process bench starts (bench/scale.bench.ts, bench/e2e.bench.ts):
 * one set of them, killed on any way out, a stop that escalates to SIGKILL, and a forked helper
 * (simulator, clients, a paper strategy) answering `{ id, cmd }` with `{ type: 'answer', id, v | error }`.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** Every process a bench starts: killAll() on any way out. */
export const children = new Set<ChildProcess>();

export function killAll(): void {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
}

export function exitedOf(child: ChildProcess): Promise<void> {
  return new Promise((res) => {
    if (child.exitCode !== null || child.signalCode !== null) res();
    else child.once('exit', () => res());
  });
}

/** SIGTERM, then SIGKILL if it has not exited within `stopMs`. */
export async function stopChild(child: ChildProcess, stopMs: number): Promise<void> {
  const exited = exitedOf(child);
  if (child.exitCode === null && child.signalCode === null) {
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), stopMs);
    await exited;
    clearTimeout(timer);
  }
  await exited;
  children.delete(child);
}

/** A command without its id, per member of the union. */
export type Ask<C> = C extends unknown ? Omit<C, 'id'> : never;

/** A forked helper answering `{ id, cmd }` with `{ type: 'answer', id, v | error }`. `file` is relative to bench/. */
export class Forked<C extends { id: number; cmd: string }> {
  private nextId = 1;
  private readonly waiting = new Map<number, { res: (v: unknown) => void; rej: (e: Error) => void }>();

  private constructor(readonly name: string, readonly child: ChildProcess) {
    child.on('message', (m: { type: string; id?: number; v?: unknown; error?: string }) => {
      if (m.type !== 'answer') return;
      const w = this.waiting.get(m.id!);
      this.waiting.delete(m.id!);
      if (m.error) w?.rej(new Error(`${name}: ${m.error}`));
      else w?.res(m.v);
    });
    child.on('exit', (code, signal) => {
      for (const w of this.waiting.values()) w.rej(new Error(`${name} exited (${code ?? signal})`));
      this.waiting.clear();
    });
  }

  static start<C extends { id: number; cmd: string }, U>(name: string, file: string, args: string[] = []): Promise<{ proc: Forked<C>; up: U }> {
    const child = fork(fileURLToPath(new URL(file, import.meta.url)), args, { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    children.add(child);
    const proc = new Forked<C>(name, child);
    return new Promise((res, rej) => {
      child.once('message', (up: U) => res({ proc, up }));
      child.once('exit', (code) => rej(new Error(`${name} exited with ${code} before starting`)));
    });
  }

  ask<R>(c: Ask<C>, timeoutMs = 60_000): Promise<R> {
    const id = this.nextId++;
    return new Promise<R>((res, rej) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        rej(new Error(`${this.name} did not answer ${c.cmd} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.set(id, {
        res: (v) => { clearTimeout(timer); res(v as R); },
        rej: (e) => { clearTimeout(timer); rej(e); },
      });
      this.child.send({ ...c, id });
    });
  }
}
