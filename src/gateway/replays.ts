/**
 * Replay sessions over REST (src/replay/): a stored range replayed through `/kite/replay/{id}` and
 * `/ws/replay/{id}` at any speed. Each session belongs to the key that made it.
 *
 * | route                              | does                                                     |
 * |------------------------------------|----------------------------------------------------------|
 * | POST /api/replays                  | make a session: from, to, instruments?, speed?, start?, idleSkipMs? → 201 its state |
 * | GET /api/replays                   | the key's sessions                                       |
 * | GET /api/replays/{id}              | one session's state: position, ticks sent, clients       |
 * | DELETE /api/replays/{id}           | stop it; its clients are closed with code 1000           |
 * | POST /api/replays/{id}/pause       | hold at the next tick                                    |
 * | POST /api/replays/{id}/resume      | go on (body `{speed}` optional: a new speed)             |
 * | POST /api/replays/{id}/seek        | body `{to}`: continue from that time (bars start again)  |
 * | /api/replays/{id}/orders, trades, positions | the session's paper orders (as /api/orders ...) |
 * | /kite/replay/{id}/orders, trades, portfolio, margins | the same through Kite's REST (KiteConnect `root`) |
 *
 * A session's paper orders fill against its replayed ticks and depth, on replayed time, with the
 * paper broker live keys' paper orders use; they are kept in the session (not stored), apart from
 * live orders, and end with it. Every key trades on paper in a replay, whatever its live mode.
 * Times are epoch ms, ISO 8601 with a zone, or India wall-clock 'YYYY-MM-DD HH:mm:ss' (as /api/bars);
 * a bare date 'YYYY-MM-DD' as `to` means the end of that day. `speed`: a positive number (× real
 * time) or "max" (as fast as the clients take it). `start`: "subscribe" (default: it starts when a
 * client first subscribes, so a strategy that connects then subscribes misses nothing),
 * "running" or "paused".
 */
import { z } from 'zod';
import { DAY_MS } from '../core/ist.ts';
import { HttpError, jsonOf, validate, type HttpReply, type HttpRequest, type Router } from './http.ts';
import { parseTime } from './history.ts';
import { ReplayLimitError, type ReplayManager } from '../replay/manager.ts';
import type { ReplaySession } from '../replay/session.ts';
import type { OrderService } from '../orders/service.ts';
import { addApiOrderRoutes } from './orders.ts';

/** Default idle skip: a pause longer than a minute (a thin option's, the night) is not waited out. */
export const DEFAULT_IDLE_SKIP_MS = 60_000;
/** The longest range one session may cover. */
const MAX_RANGE_MS = 31 * DAY_MS;
const DATE = /^\d{4}-\d{2}-\d{2}$/;

const timeOf = (field: string, endOfDay: boolean) => z.union([z.string(), z.number()]).transform((v, ctx) => {
  const s = String(v).trim();
  let ms = parseTime(s);
  if (endOfDay && DATE.test(s) && !Number.isNaN(ms)) ms += DAY_MS;
  if (Number.isNaN(ms)) {
    ctx.addIssue({ code: 'custom', message: `"${s.slice(0, 40)}" is not a time: use epoch ms, ISO 8601 with a zone or India time 'YYYY-MM-DD HH:mm:ss' (${field})` });
    return z.NEVER;
  }
  return ms;
});

const speedOf = z.union([z.literal('max'), z.number().positive('speed must be above 0, or "max"').max(10_000, 'speed is at most 10000×')])
  .transform((v) => (v === 'max' ? 0 : v));

const createBody = z.strictObject({
  from: timeOf('from', false),
  to: timeOf('to', true),
  instruments: z.array(z.number().int().nonnegative()).min(1).max(5000).optional(),
  speed: speedOf.optional(),
  start: z.enum(['subscribe', 'running', 'paused']).optional(),
  idleSkipMs: z.number().int().min(1).max(DAY_MS).optional(),
});
const resumeBody = z.strictObject({ speed: speedOf.optional() });
const seekBody = z.strictObject({ to: timeOf('to', false) });

/** The paper order service of the session a request names (`:id`), the caller's own; 404 otherwise. */
export function replayOrders(replays: ReplayManager): (r: HttpRequest) => OrderService {
  return (r) => {
    const s = replays.get(r.principal!.name, r.params.replay);
    if (s === undefined) {
      const h = new HttpError(404, 'replay_not_found', `no replay session "${r.params.replay.slice(0, 40)}" of this key: GET /api/replays lists yours`, 'replay');
      // As Kite answers an unknown id (an order's): 400 InputException on /kite, 404 on the JSON API.
      h.kiteStatus = 400;
      h.kiteType = 'InputException';
      throw h;
    }
    if (s.orders === null) throw new HttpError(503, 'orders_unavailable', 'this server takes no paper orders in replays');
    return s.orders;
  };
}

export function addApiReplayRoutes(router: Router, replays: ReplayManager, known: (token: number) => boolean): void {
  addApiOrderRoutes(router, { orders: replayOrders(replays) }, { prefix: '/api/replays/:replay' });
  const j = { auth: 'key', style: 'json' } as const;
  const who = (r: HttpRequest) => r.principal!.name;
  const session = (r: HttpRequest): ReplaySession => {
    const s = replays.get(who(r), r.params.id);
    if (s === undefined) throw new HttpError(404, 'replay_not_found', `no replay session "${r.params.id.slice(0, 40)}" of this key: GET /api/replays lists yours`, 'id');
    return s;
  };
  const optionalBody = (r: HttpRequest) => (r.body === null || r.body.length === 0 ? {} : jsonOf(r));
  router
    .add({
      ...j, method: 'POST', path: '/api/replays', handler: (r): HttpReply => {
        const b = validate(createBody, jsonOf(r), 'body');
        if (b.to <= b.from) throw new HttpError(400, 'invalid_body', 'to: must be after from', 'to');
        if (b.to - b.from > MAX_RANGE_MS) throw new HttpError(400, 'invalid_body', 'to: a session covers at most 31 days', 'to');
        const unknown = b.instruments?.find((t) => !known(t));
        if (unknown !== undefined) throw new HttpError(400, 'invalid_body', `instruments: ${unknown} is not an instrument this service follows`, 'instruments');
        try {
          const s = replays.create(who(r), {
            fromMs: b.from, toMs: b.to, tokens: b.instruments ?? null, speed: b.speed ?? 1,
            start: b.start ?? 'subscribe', idleSkipMs: b.idleSkipMs ?? DEFAULT_IDLE_SKIP_MS,
          });
          return { status: 201, body: s.info() };
        } catch (e) {
          if (e instanceof ReplayLimitError) throw new HttpError(429, 'too_many_replays', e.message);
          throw e;
        }
      },
    })
    .add({ ...j, method: 'GET', path: '/api/replays', handler: (r) => ({ body: { replays: replays.list(who(r)).map((s) => s.info()) } }) })
    .add({ ...j, method: 'GET', path: '/api/replays/:id', handler: (r) => ({ body: session(r).info() }) })
    .add({
      ...j, method: 'DELETE', path: '/api/replays/:id', handler: async (r) => {
        const s = session(r);
        await replays.delete(who(r), s.id);
        return { body: { ...s.info(), state: 'closed' } };
      },
    })
    .add({
      ...j, method: 'POST', path: '/api/replays/:id/pause', handler: (r) => {
        const s = session(r);
        s.pause();
        return { body: s.info() };
      },
    })
    .add({
      ...j, method: 'POST', path: '/api/replays/:id/resume', handler: (r) => {
        const s = session(r);
        const b = validate(resumeBody, optionalBody(r), 'body');
        s.resume(b.speed);
        return { body: s.info() };
      },
    })
    .add({
      ...j, method: 'POST', path: '/api/replays/:id/seek', handler: (r) => {
        const s = session(r);
        const b = validate(seekBody, jsonOf(r), 'body');
        if (b.to < s.spec.fromMs || b.to >= s.spec.toMs) throw new HttpError(400, 'invalid_body', `to: must be within the session's range [${new Date(s.spec.fromMs).toISOString()}, ${new Date(s.spec.toMs).toISOString()})`, 'to');
        s.seek(b.to);
        return { body: s.info() };
      },
    });
}
