/**
 * A replay session's thread (workers/replay/) and the main thread (src/replay/session.ts): what
 * goes between them.
 *
 * The thread reads the stored ticks of the session's range in exchange-time order, paces them on
 * the wall clock at the session's speed, runs them through the aggregate stage (the one live
 * shards run: bars are rebuilt, never read back), and writes ticks and bars into two output rings
 * in the layouts a shard uses (src/core/tick.ts, src/core/bar.ts). The main thread drains them into
 * the session's own feed hub, as it drains a shard's, so the session's `/ws` and `/kite` endpoints
 * serve replayed ticks through the very code that serves live ones.
 *
 * Why a thread per session: the stored rows are read with the `postgres` driver, which the main
 * thread never loads (src/storage/supervisor.ts says why), decoding and aggregating a replay at
 * full speed is a core's work, and sessions must not slow each other or the live feed.
 *
 * Status words (`status`, a Float64Array over a SharedArrayBuffer the main thread reads for
 * GET /api/replays without a round trip):
 *
 * | off | field        | meaning                                                              |
 * |-----|--------------|----------------------------------------------------------------------|
 * | 0   | STATE        | ReplayState                                                          |
 * | 1   | POSITION_MS  | exchange time of the last tick sent; the range's start before any    |
 * | 2   | TICKS        | ticks sent since the session (or its last seek) began                |
 * | 3   | BARS_CLOSED  | bars the aggregate stage closed                                      |
 * | 4   | SPEED        | × real time; 0 = as fast as the clients take it                      |
 * | 5   | SKIPPED_MS   | exchange time skipped as idle (gaps longer than idleSkipMs)          |
 * | 6   | WAITS        | times the thread waited for room in its output rings (slow clients)  |
 */

import type { Instrument } from './instrument.ts';

export const RS = {
  STATE: 0,
  POSITION_MS: 1,
  TICKS: 2,
  BARS_CLOSED: 3,
  SPEED: 4,
  SKIPPED_MS: 5,
  WAITS: 6,
} as const;
export const REPLAY_STATUS_WORDS = 8;

export const ReplayState = {
  /** Opened, waiting for its start (paused, or until a client subscribes). */
  WAITING: 0,
  RUNNING: 1,
  PAUSED: 2,
  /** Every tick of the range was sent; a seek starts it again. */
  ENDED: 3,
  /** Stopped: the thread is gone. */
  CLOSED: 4,
  /** The source failed (the message says why). */
  FAILED: 5,
} as const;
export type ReplayStateCode = (typeof ReplayState)[keyof typeof ReplayState];
export const REPLAY_STATE_NAMES = ['waiting', 'running', 'paused', 'ended', 'closed', 'failed'] as const;

/** Where the thread reads stored ticks from. */
export type ReplaySourceSpec =
  /** A PostgreSQL server: the thread opens its own connection. */
  | { kind: 'postgres'; url: string }
  /**
   * The embedded PGlite, which only the writer thread can open: the thread sends each query to
   * the main thread ('query'), which runs it through storage's read interface and answers.
   */
  | { kind: 'proxy' };

export interface ReplayData {
  id: string;
  /** Ring of canonical ticks (N_SLOT_WORDS a slot), one consumer. */
  ticksOut: SharedArrayBuffer;
  /** Ring of bars (BAR_SLOT_WORDS a slot), one consumer. */
  barsOut: SharedArrayBuffer;
  /** Doorbell of the one consumer (DOORBELL_STRIDE words), rung after each publish. */
  doorbells: SharedArrayBuffer;
  status: SharedArrayBuffer;
  instruments: Instrument[];
  /** Tokens replayed; null: every stored one. */
  tokens: number[] | null;
  fromMs: number;
  /** Exclusive. */
  toMs: number;
  timeframesMs: number[];
  graceMs: number;
  speed: number;
  /** A pause between two ticks longer than this (exchange time) is skipped at any speed but 0. */
  idleSkipMs: number;
  /** Start running at once; otherwise wait for 'resume'. */
  running: boolean;
  source: ReplaySourceSpec;
}

/** Main thread → replay thread. */
export type ReplayControl =
  | { type: 'resume'; speed?: number }
  | { type: 'pause' }
  | { type: 'seek'; toMs: number }
  | { type: 'reset-done' }
  | { type: 'stop' }
  | { type: 'answer'; id: number; rows?: Record<string, unknown>[]; error?: string };

/** Replay thread → main thread. */
export type ReplayMessage =
  /** A seek: forget the latest ticks and bars (every record before it was drained); answer 'reset-done'. */
  | { type: 'reset' }
  | { type: 'ended' }
  | { type: 'failed'; message: string }
  | { type: 'query'; id: number; text: string; params: unknown[] }
  | { type: 'stopped' };
