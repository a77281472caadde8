/**
 * One supervised worker thread: what the writer thread (supervisor.ts) and the reader thread
 * (reads.ts) have in common. It starts the thread through startWorker, starts it again with
 * back-off whenever it dies, keeps `restarts` and `lastExit` for /health, and carries reads to it
 * and their answers back (`request()`).
 *
 * Back-off: the first restart waits RESTART_MIN_MS, each death after it doubles the wait up to
 * RESTART_MAX_MS; a thread that ran HEALTHY_AFTER_MS before dying starts the count again. So a
 * thread that dies at once on every start (a database that refuses it) costs a start every few
 * seconds, and a rare death of a healthy one is mended in a tenth of a second.
 *
 * An uncaught error in a worker thread ends that thread only and arrives here as the Worker's
 * 'error' event (listened to, so it never reaches the process); 'exit' follows, and only then,
 * with the old thread gone, does the new one start. A request the thread has not answered when it
 * exits fails at once with STORAGE_RESTARTING: the thread that would have answered is gone, and a
 * caller told to retry (503) is better served than one held open for an unknown time.
 *
 * What differs between the threads comes in as options: the exit that is a clean stop rather than
 * a death (`stoppedBy`), the log line of a death (`died`), and the thread's own messages
 * (`onMessage`). Both threads speak the same 'log' and 'result' messages and take the same
 * 'query' (src/core/writer-protocol.ts, src/core/reader-protocol.ts); those are handled here.
 */
import type { Worker } from 'node:worker_threads';
import { AppError } from '../core/errors.ts';
import type { Logger } from '../log.ts';
import { startWorker } from '../threads.ts';

const RESTART_MIN_MS = 100;
const RESTART_MAX_MS = 5000;
/** A thread that ran this long before dying resets the back-off. */
const HEALTHY_AFTER_MS = 30_000;

/** A read for the thread; exactly one 'result' with the same id answers it. */
export interface QueryRequest { type: 'query'; id: number; text: string; params: unknown[] }

/** The messages every supervised thread may send; the rest go to `onMessage`. */
export type LogMessage = { type: 'log'; level: 'debug' | 'info' | 'warn' | 'error'; obj: Record<string, unknown>; msg: string };
export type ResultMessage = { type: 'result'; id: number; rows?: unknown[]; error?: { message: string; code?: string } };

export interface ExitRecord { code: number | null; error?: string; at: string }

export interface Backoff {
  minMs: number;
  maxMs: number;
  /** A thread that ran longer than this before dying starts the back-off again. */
  healthyAfterMs: number;
}

export interface SupervisedThreadOptions<Message extends { type: string }> {
  /** The thread's name: its Worker name, `component` of its log lines, and in error messages. */
  name: string;
  /** The TypeScript module the thread runs (startWorker). */
  module: URL;
  /**
   * The thread's workerData. Read at each start, so what the owner changes in it (the writer's
   * instruments, once stored) reaches the next thread.
   */
  data: unknown;
  log: Logger;
  /** The error line when the thread dies: its code, its message, and the reason an exit code means. */
  died: { code: string; msg: string; reason: (exitCode: number | null) => string | undefined };
  /** The thread's messages other than 'log' and 'result'. */
  onMessage?: (m: Exclude<Message, { type: 'log' | 'result' }>) => void;
  /**
   * After stop(): whether this exit is the stop asked for (not counted, not logged) rather than a
   * death. Every exit after stop() is, unless this says otherwise.
   */
  stoppedBy?: (exitCode: number | null) => boolean;
  backoff?: Backoff;
}

interface Pending {
  resolve: (rows: unknown[]) => void;
  reject: (e: Error) => void;
}

export class SupervisedThread<Control extends { type: string }, Message extends { type: string }> {
  restarts = 0;
  lastExit: ExitRecord | null = null;
  private worker: Worker | null = null;
  private stopping = false;
  private exited: Promise<void> = Promise.resolve();
  /** Deaths in a row, each before HEALTHY_AFTER_MS of running: the back-off's exponent. */
  private failures = 0;
  private restartTimer: NodeJS.Timeout | null = null;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private readonly backoff: Backoff;

  constructor(private readonly opts: SupervisedThreadOptions<Message>) {
    this.backoff = opts.backoff ?? { minMs: RESTART_MIN_MS, maxMs: RESTART_MAX_MS, healthyAfterMs: HEALTHY_AFTER_MS };
  }

  /** A thread is running (not between a death and its restart, nor stopped). */
  get running(): boolean {
    return this.worker !== null;
  }

  /** Requests sent and not yet answered. */
  get inFlight(): number {
    return this.pending.size;
  }

  /** Start a thread now (the owner's first, or one to drain with while stopping). */
  start(): void {
    const name = this.opts.name;
    const w = startWorker(this.opts.module, { workerData: this.opts.data, name });
    this.worker = w;
    const started = Date.now();
    let error: Error | undefined;
    w.on('message', (m: Message) => this.onMessage(m));
    w.on('error', (e) => { error = e; });
    this.exited = new Promise<void>((resolve) => {
      w.on('exit', (code) => {
        this.worker = null;
        for (const p of this.pending.values()) p.reject(new AppError('STORAGE_RESTARTING', `the ${name} thread restarted while answering; retry the read`));
        this.pending.clear();
        resolve();
        if (this.stopping && (this.opts.stoppedBy?.(code) ?? true)) return;
        this.restarts++;
        this.lastExit = { code, error: error?.message, at: new Date().toISOString() };
        const b = this.backoff;
        this.failures = Date.now() - started > b.healthyAfterMs ? 1 : this.failures + 1;
        const delay = Math.min(b.maxMs, b.minMs * 2 ** (this.failures - 1));
        this.opts.log.error({
          code: this.opts.died.code,
          exitCode: code,
          reason: this.opts.died.reason(code),
          err: error ? { message: error.message, stack: error.stack } : undefined,
          restartInMs: delay,
          restarts: this.restarts,
        }, this.opts.died.msg);
        // While stopping, the owner starts the next one itself if it wants one, at once.
        if (!this.stopping) this.restartTimer = setTimeout(() => { this.restartTimer = null; if (!this.stopping) this.start(); }, delay);
      });
    });
  }

  private onMessage(m: Message): void {
    const own = m as Message | LogMessage | ResultMessage;
    if (own.type === 'log') {
      const log = own as LogMessage;
      this.opts.log[log.level]({ component: this.opts.name, ...log.obj }, log.msg);
    } else if (own.type === 'result') {
      const r = own as ResultMessage;
      const p = this.pending.get(r.id);
      if (p === undefined) return;
      this.pending.delete(r.id);
      if (r.error) p.reject(Object.assign(new Error(r.error.message), { code: r.error.code }));
      else p.resolve(r.rows ?? []);
    } else {
      this.opts.onMessage?.(m as Exclude<Message, { type: 'log' | 'result' }>);
    }
  }

  /** One statement, answered by the thread: its rows, or its error (with the database's `code`). */
  request<T = unknown>(text: string, params: readonly unknown[] = []): Promise<T[]> {
    const w = this.worker;
    if (w === null) {
      return Promise.reject(new AppError('STORAGE_RESTARTING', this.stopping
        ? 'storage is shutting down'
        : `the ${this.opts.name} thread is restarting; retry the read in a moment`));
    }
    const id = this.nextId++;
    return new Promise<T[]>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (rows: unknown[]) => void, reject });
      w.postMessage({ type: 'query', id, text, params: [...params] } satisfies QueryRequest);
    });
  }

  /**
   * From now on the thread is not started again by itself: a restart already waiting is
   * cancelled, and an exit `stoppedBy` accepts is no death.
   */
  stop(): void {
    this.stopping = true;
    if (this.restartTimer !== null) {
      clearTimeout(this.restartTimer);
      this.restartTimer = null;
    }
  }

  /**
   * stop(), then ask the running thread to end with `m`; resolves once it has exited, ending it
   * by force after `killAfterMs`. Resolves at once when no thread runs.
   */
  async end(m: Control, killAfterMs: number): Promise<void> {
    this.stop();
    const w = this.worker;
    if (w === null) return;
    w.postMessage(m);
    const timer = setTimeout(() => void w.terminate(), killAfterMs);
    await this.exited;
    clearTimeout(timer);
  }
}
