/**
 * The replay sessions of one server (session.ts), and the two WebSocket routes that hand each
 * client to its session's endpoint:
 *
 * | route                 | protocol                                                         |
 * |-----------------------|------------------------------------------------------------------|
 * | GET /kite/replay/{id} | Kite's ticker (the official KiteTicker with `root` set to it)    |
 * | GET /ws/replay/{id}   | the msgpack feed (docs/protocol.md), as `/ws`                    |
 *
 * Both take the API key as their live routes do; only the key that made the session may attach
 * (any other gets the route's refusal: 403 on /kite, 401 on /ws). An unknown id gets 404.
 * Sessions are made, listed and controlled through REST (src/gateway/replays.ts).
 */
import type { HttpResponse, TemplatedApp, WebSocket } from 'uWebSockets.js';
import { AppError } from '../core/errors.ts';
import { feedWsBehavior, type FeedClient } from '../gateway/feed.ts';
import { KITE_WS_BEHAVIOR, type KiteClient } from '../gateway/kite-ws.ts';
import { ReplayState } from '../core/replay-protocol.ts';
import { ReplaySession, type ReplayDeps, type ReplaySpec } from './session.ts';

/** Default REPLAY_MAX_SESSIONS: each session is a thread and a database connection. */
export const DEFAULT_MAX_SESSIONS = 8;

/**
 * A session nobody follows and that is not running (ended, paused, waiting, failed) for this long
 * is closed: a forgotten one would hold its thread and connection, and a slot of the limit, for
 * good. A running session with no client left runs on to its end, then idles out.
 */
export const IDLE_CLOSE_MS = 10 * 60_000;
const SWEEP_MS = 30_000;

export class ReplayLimitError extends AppError {
  constructor(max: number) {
    super('REPLAY_LIMIT', `this server runs at most ${max} replay sessions (REPLAY_MAX_SESSIONS); DELETE one you no longer need`, { max });
  }
}

function notFound(res: HttpResponse, id: string): void {
  res.cork(() => {
    res.writeStatus('404 Not Found').writeHeader('Content-Type', 'application/json')
      .end(JSON.stringify({ error: 'not_found', message: `no replay session "${id.slice(0, 40)}": POST /api/replays makes one` }));
  });
}

export class ReplayManager {
  private readonly sessions = new Map<string, ReplaySession>();
  /** When each session was last followed or running, epoch ms. */
  private readonly activeAt = new Map<string, number>();
  private readonly sweeper: NodeJS.Timeout;

  constructor(private readonly deps: Omit<ReplayDeps, 'app'> & { app: TemplatedApp; maxSessions: number; idleCloseMs?: number }) {
    const { app } = deps;
    app.ws<KiteClient>('/kite/replay/:id', {
      ...KITE_WS_BEHAVIOR,
      upgrade: (res, req, ctx) => {
        const id = req.getParameter(0) ?? '';
        const s = this.sessions.get(id);
        if (s === undefined) return notFound(res, id);
        s.kite.upgrade(res, req, ctx);
      },
      open: (ws) => ws.getUserData().endpoint.opened(ws),
      message: (ws, m, bin) => ws.getUserData().endpoint.message(ws, m, bin),
      drain: (ws) => ws.getUserData().endpoint.drained(ws),
      close: (ws) => ws.getUserData().endpoint.closed(ws),
    });
    // The feed's behaviour with its default slow-client limit (a session's feed uses the default).
    app.ws<FeedClient>('/ws/replay/:id', {
      ...feedWsBehavior(16 << 20),
      upgrade: (res, req, ctx) => {
        const id = req.getParameter(0) ?? '';
        const s = this.sessions.get(id);
        if (s === undefined) return notFound(res, id);
        s.feed.upgrade(res, req, ctx);
      },
      open: (ws: WebSocket<FeedClient>) => ws.getUserData().endpoint.open(ws),
      message: (ws, m, bin) => ws.getUserData().endpoint.message(ws, m, bin),
      drain: (ws) => ws.getUserData().endpoint.drain(ws),
      close: (ws) => ws.getUserData().endpoint.closed(ws),
    });
    this.sweeper = setInterval(() => void this.sweep(Date.now(), deps.idleCloseMs ?? IDLE_CLOSE_MS), SWEEP_MS);
    this.sweeper.unref();
  }

  /** Close the sessions idle (no client, not running) for `idleMs`; returns their ids. */
  async sweep(now: number, idleMs: number): Promise<string[]> {
    const closed: string[] = [];
    for (const [id, s] of this.sessions) {
      const info = s.info();
      if (info.clients > 0 || info.state === 'running') {
        this.activeAt.set(id, now);
        continue;
      }
      if (now - (this.activeAt.get(id) ?? s.createdAt) < idleMs) continue;
      this.sessions.delete(id);
      this.activeAt.delete(id);
      this.deps.log.info({ replay: id, owner: s.owner, state: info.state, idleMs }, 'replay session closed: idle with no client');
      await s.close();
      closed.push(id);
    }
    return closed;
  }

  create(owner: string, spec: ReplaySpec): ReplaySession {
    const live = [...this.sessions.values()].filter((s) => s.state() !== ReplayState.CLOSED && s.state() !== ReplayState.FAILED).length;
    if (live >= this.deps.maxSessions) throw new ReplayLimitError(this.deps.maxSessions);
    const s = new ReplaySession(this.deps, owner, spec);
    this.sessions.set(s.id, s);
    this.deps.log.info({ replay: s.id, owner, from: new Date(spec.fromMs).toISOString(), to: new Date(spec.toMs).toISOString(), speed: spec.speed, instruments: spec.tokens?.length ?? 'all' }, 'replay session opened');
    return s;
  }

  /** The owner's session, or undefined (another key's is as unknown as a missing one). */
  get(owner: string, id: string): ReplaySession | undefined {
    const s = this.sessions.get(id);
    return s !== undefined && s.owner === owner ? s : undefined;
  }

  list(owner: string): ReplaySession[] {
    return [...this.sessions.values()].filter((s) => s.owner === owner);
  }

  async delete(owner: string, id: string): Promise<boolean> {
    const s = this.get(owner, id);
    if (s === undefined) return false;
    this.sessions.delete(id);
    this.activeAt.delete(id);
    await s.close();
    return true;
  }

  get size(): number {
    return this.sessions.size;
  }

  async closeAll(): Promise<void> {
    clearInterval(this.sweeper);
    const all = [...this.sessions.values()];
    this.sessions.clear();
    await Promise.all(all.map((s) => s.close()));
  }
}
