/**
 * Composes a ROLE=gateway process: the client side of the service with no Kite connection, no
 * rings and no writer. Its hub is fed by the ingest's drain messages through Redis
 * (src/scale/subscriber.ts), after a snapshot from the cache; /ws, /kite, REST, orders and the
 * dashboard hang off that hub exactly as in ROLE=all (src/service.ts). Any number may run.
 *
 * It reads the followed instruments and the master from Redis (the ingest writes them at start;
 * src/scale/keys.ts) and waits for them, saying so. History, orders, trades and positions are in
 * the shared PostgreSQL, reached through a small pool of this process's own.
 */
import postgres from 'postgres';
import { Redis } from 'ioredis';
import type { Config } from './config.ts';
import { AppError } from './core/errors.ts';
import { pgDb, pgOptions, type Db } from './core/db.ts';
import { migrate } from './core/migrate.ts';
import type { Instrument } from './core/instrument.ts';
import type { Logger } from './log.ts';
import { startGateway, type Gateway } from './gateway/server.ts';
import { FeedHub } from './gateway/hub.ts';
import { Feed } from './gateway/feed.ts';
import { KiteWs, LIVE_KITE_MOUNT } from './gateway/kite-ws.ts';
import { mountRest, readiness } from './gateway/rest.ts';
import { mountStatic } from './gateway/static.ts';
import { followKeyFile, KeyStore, keysFilePath } from './auth/keys.ts';
import { createCache, type QuoteCache } from './cache/index.ts';
import { OrderService } from './orders/service.ts';
import { dbStore, OrderStore } from './orders/store.ts';
import { IdSlotLease } from './orders/id-slot.ts';
import { PgIdempotency } from './orders/shared-idempotency.ts';
import { RedisRateLimiter } from './orders/shared-limits.ts';
import { RedisRisk } from './orders/shared-risk.ts';
import { OrderUpdateBus } from './orders/update-bus.ts';
import { LiveBroker } from './orders/live/broker.ts';
import { quarantineLog } from './quarantine-log.ts';
import { scaleKeys } from './scale/keys.ts';
import { readUniverse, type UniverseDoc } from './scale/publisher.ts';
import { DrainSubscriber } from './scale/subscriber.ts';
import { WEB_DIST } from './web-build.ts';
import { DEFAULT_BAR_GRACE_MS } from './core/bar.ts';
import { ReplayManager } from './replay/manager.ts';
import { replayPaperOrders } from './replay/paper.ts';

export interface GatewayService {
  readonly role: 'gateway';
  readonly port: number;
  readonly gateway: Gateway;
  readonly hub: FeedHub;
  readonly subscriber: DrainSubscriber;
  readonly keys: KeyStore;
  readonly cache: QuoteCache;
  readonly orders: OrderService;
  readonly tokens: readonly number[];
  health(): Record<string, unknown>;
  close(): Promise<void>;
}

/** Exit code of a gateway whose ingest changed the instrument list: restart to load it. */
export const EXIT_UNIVERSE_CHANGED = 75;

export async function startGatewayService(config: Config, log: Logger, opts: { onUniverseChange?: (id: number) => void } = {}): Promise<GatewayService> {
  const started = Date.now();
  const redisUrl = config.redisUrl!;
  const keysR = scaleKeys(config.redisPrefix);
  const cleanup: (() => Promise<void> | void)[] = [];
  try {
    // The instrument list and master, as the ingest published them.
    const boot = new Redis(redisUrl, { connectionName: 'n50-gateway-boot', maxRetriesPerRequest: 2 });
    boot.on('error', () => {});
    cleanup.push(() => boot.disconnect());
    let universe: UniverseDoc | null = null;
    for (let waited = 0; ; waited++) {
      universe = await readUniverse(boot, keysR);
      if (universe) break;
      if (waited % 20 === 0) log.info({ key: keysR.universe }, 'waiting for an ingest (ROLE=ingest) to publish the followed instruments to Redis');
      await new Promise((r) => setTimeout(r, 500));
    }
    const masterRaw = await boot.get(keysR.master);
    const master: Instrument[] = masterRaw ? JSON.parse(masterRaw) as Instrument[] : universe.instruments;
    boot.disconnect();
    const instruments = universe.instruments;
    const tokens = instruments.map((i) => i.instrumentToken);
    const byToken = new Map(master.map((i) => [i.instrumentToken, i]));
    for (const i of instruments) byToken.set(i.instrumentToken, i);
    const masterBySymbol = new Map(master.map((i) => [`${i.exchange}:${i.tradingsymbol}`, i]));

    // The shared database: orders, trades, positions, history. The ingest migrates it too; the
    // migrator's advisory lock makes whichever comes second find nothing to do.
    const sql = postgres(config.databaseUrl!, pgOptions({ max: config.storage.readConnections + 2 }));
    cleanup.push(() => sql.end({ timeout: 2 }));
    const db: Db = pgDb(sql);
    await migrate(db, { log: { info: (o, m) => log.info(o, m), warn: (o, m) => log.warn(o, m) } });

    const hub = new FeedHub(instruments, universe.timeframesMs);
    hub.add(quarantineLog(log, hub.symbols));
    const cache = createCache(config, log);
    cleanup.push(() => cache.close());

    const keys = await KeyStore.load({ configured: config.apiKeys, file: keysFilePath(config.dataDir) });
    let feed: Feed | undefined;
    let kiteWs: KiteWs | undefined;
    let replays: ReplayManager | undefined;
    const stopKeyWatch = followKeyFile(keys, log, (removed) => {
      feed?.dropKeys(removed);
      kiteWs?.dropKeys(removed);
    });
    cleanup.push(stopKeyWatch);
    if (keys.size === 0) log.warn('no API keys: every feed and REST client will be refused. Set API_KEYS or run `npm run keys -- create NAME`.');

    const subscriber = new DrainSubscriber({
      url: redisUrl, prefix: config.redisPrefix, hub, universe: universe.id, log, flushMs: config.cacheFlushMs,
      onUniverseChange: (id) => {
        log.error({ was: universe!.id, now: id }, 'the ingest follows another instrument list (a new day or a new selection); restarting this gateway to load it');
        opts.onUniverseChange?.(id);
      },
    });
    cleanup.push(() => subscriber.close());

    // Orders across gateways (src/orders/service.ts "Shared state"): the account's rate budget and
    // each key's risk in Redis, Idempotency-Keys in PostgreSQL, ids in a slot of this gateway's,
    // and order updates to the owning key's sockets on every gateway through Redis pub/sub.
    const ordersRedis = new Redis(redisUrl, { connectionName: 'n50-gateway-orders', maxRetriesPerRequest: 1, commandTimeout: 2000 });
    ordersRedis.on('error', () => {});
    cleanup.push(() => ordersRedis.disconnect());
    const ordersSub = new Redis(redisUrl, { connectionName: 'n50-gateway-order-updates' });
    ordersSub.on('error', () => {});
    cleanup.push(() => ordersSub.disconnect());
    const idSlot = await IdSlotLease.acquire({ redis: ordersRedis, prefix: config.redisPrefix, log });
    cleanup.push(() => idSlot.close());
    const bus = new OrderUpdateBus({
      pub: ordersRedis, sub: ordersSub, prefix: config.redisPrefix, log,
      local: {
        order: (key, row) => {
          kiteWs?.orderUpdate(key, row);
          feed?.orderUpdate(key, row);
        },
        positions: (key, rows) => feed?.positionUpdate(key, rows),
      },
    });
    await bus.start();
    cleanup.push(() => bus.close());

    const kite = config.kite;
    const orders: OrderService = new OrderService({
      config: config.orders,
      store: new OrderStore(dbStore(db)),
      instrument: (exchange, symbol) => masterBySymbol.get(`${exchange}:${symbol}`) ?? null,
      instrumentByToken: (token) => byToken.get(token) ?? null,
      market: hub,
      rows: hub.rows,
      modeOf: (key) => keys.modeOf(key),
      live: kite !== null
        ? (events) => new LiveBroker({
          apiUrl: config.kiteApiUrl, apiKey: kite.apiKey, accessToken: kite.accessToken, events,
          timeoutMs: config.orders.kiteTimeoutMs, pollMs: config.orders.livePollMs,
          lookup: { byBrokerId: (id) => orders.orderByBrokerId(id), byId: (id) => orders.orderById(id) },
          log,
        })
        : undefined,
      push: bus.push,
      shared: {
        limits: new RedisRateLimiter({ redis: ordersRedis, config: config.orders, prefix: config.redisPrefix }),
        idempotency: new PgIdempotency({ db, log }),
        risk: new RedisRisk({ redis: ordersRedis, limits: config.orders, prefix: config.redisPrefix, log }),
        ids: idSlot,
      },
      // Every gateway loads every order; each works only its own and the orphans it claims.
      works: (ids) => idSlot.adopt(ids),
      log,
    });
    await orders.start();
    void orders.reconcile();
    cleanup.push(() => orders.close());
    hub.add({ tick: (f, o, row) => orders.tick(f, o, row) });

    const health = (): Record<string, unknown> => ({
      role: 'gateway',
      uptimeS: Math.round((Date.now() - started) / 1000),
      feed: { source: 'ingest via Redis', connected: subscriber.stats.state === 'live', instruments: tokens.length, universe: universe!.id, from: subscriber.stats },
      live: { ticks: hub.ticks, bars: hub.bars, feed: feed?.stats, kite: kiteWs?.stats },
      cache: cache.stats(),
      orders: { ...orders.stats(), idSlot: idSlot.slot, updates: bus.stats, live: orders.liveStatus(), reconciliation: orders.reconciliation() },
    });

    const analyticsFrames = {
      latest: (key: string) => subscriber.analyticsFrames.get(key) ?? null,
      keys: () => [...subscriber.analyticsFrames.keys()].filter((k) => k !== 'breadth'),
    };
    const gateway = await startGateway({
      host: config.host,
      port: config.port,
      health,
      routes: (app) => {
        feed = new Feed(app, { hub, auth: keys, log, analytics: analyticsFrames, ...config.ws });
        kiteWs = new KiteWs(app, hub, keys, log, LIVE_KITE_MOUNT, config.ws);
        // Replays read the shared database: a gateway serves them as it serves the live feeds.
        if (config.replayMaxSessions > 0) {
          replays = new ReplayManager({
            app, instruments, timeframesMs: universe!.timeframesMs, graceMs: DEFAULT_BAR_GRACE_MS, auth: keys, log,
            source: { kind: 'postgres', url: config.databaseUrl! },
            query: (text, params) => db.query(text, params),
            maxSessions: config.replayMaxSessions,
            paperOrders: replayPaperOrders({
              config: config.orders, log,
              instrument: (exchange, symbol) => masterBySymbol.get(`${exchange}:${symbol}`) ?? null,
              instrumentByToken: (token) => byToken.get(token) ?? null,
            }),
          });
        }
        const f = feed;
        const k = kiteWs;
        mountRest(app, {
          config,
          auth: keys,
          hub,
          quotes: cache,
          db,
          master: () => master,
          orders: { orders, postbackSecret: config.orders.kiteApiSecret },
          replays,
          analytics: cache,
          ivLookbackDays: config.analytics.ivLookbackDays,
          // "Feed connected" for a gateway: its feed from the ingest is live.
          ready: readiness({ feedConnected: () => subscriber.stats.state === 'live', db, cache, live: () => orders.liveStatus() }),
          metrics: {
            // No pipeline, decoder or rings here: the ingest's /metrics has them.
            feed: () => ({ connected: subscriber.stats.state === 'live' }),
            ws: () => f.stats,
            kiteWs: () => k.stats,
            cache: () => cache.stats(),
          },
          log,
        });
        const site = mountStatic(app, WEB_DIST);
        if (site.paths.length === 0) log.warn('the dashboard is not built (web/dist): / answers 503; `npm start` builds it');
      },
    });
    cleanup.push(() => gateway.close());
    cleanup.push(() => replays?.closeAll());
    hub.add(feed!);
    hub.add(kiteWs!);
    hub.bind();
    subscriber.setAnalyticsSink(feed!);
    await subscriber.start();
    log.info({ universe: universe.id, instruments: tokens.length, from: universe.publishedBy }, 'gateway: snapshot from the cache applied; live from the ingest');

    let closing: Promise<void> | null = null;
    return {
      role: 'gateway',
      port: gateway.port,
      gateway,
      hub,
      subscriber,
      keys,
      cache,
      orders,
      tokens,
      health,
      close() {
        closing ??= (async () => {
          stopKeyWatch();
          await replays?.closeAll();
          feed?.close();
          kiteWs?.close();
          gateway.close();
          await subscriber.close();
          await orders.close();
          await bus.close();
          await idSlot.close();
          ordersRedis.disconnect();
          ordersSub.disconnect();
          await cache.close();
          await sql.end({ timeout: 2 });
        })();
        return closing;
      },
    };
  } catch (e) {
    for (const c of cleanup.reverse()) await c();
    if (e instanceof AppError) throw e;
    throw e;
  }
}
