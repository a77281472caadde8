/**
 * Composes the service: the Kite side (real or the built-in simulator), the instrument universe,
 * ingest → front (decode into rings) → shard workers, and the uWebSockets.js gateway.
 * `main.ts` runs it as a process; tests start it in-process.
 */
import os from 'node:os';
import type { Config } from './config.ts';
import { AppError } from './core/errors.ts';
import { Front } from './front.ts';
import { startGateway, type Gateway } from './gateway/server.ts';
import { KiteIngest, type FeedGap } from './kite/ingest.ts';
import { fetchIndexLevel, fetchInstruments, type KiteRest } from './kite/master.ts';
import { selectUniverse } from './kite/selection.ts';
import { startSimulator, type Simulator } from './kite/sim/server.ts';
import { DECODE_ERROR_NAMES, parseTextMessage } from './kite/codec.ts';
import type { Logger } from './log.ts';
import { Pipeline } from './pipeline.ts';
import { DEFAULT_BAR_GRACE_MS } from './core/bar.ts';
import { Storage } from './storage/supervisor.ts';
import { FeedHub } from './gateway/hub.ts';
import { quarantineLog } from './quarantine-log.ts';
import { Feed } from './gateway/feed.ts';
import { KiteWs, LIVE_KITE_MOUNT } from './gateway/kite-ws.ts';
import { ReplayManager } from './replay/manager.ts';
import { replayPaperOrders } from './replay/paper.ts';
import { ensureDevKey, followKeyFile, KeyStore, keysFilePath } from './auth/keys.ts';
import { createCache, type QuoteCache } from './cache/index.ts';
import { mountRest, readiness } from './gateway/rest.ts';
import type { Db } from './core/db.ts';
import { OrderService } from './orders/service.ts';
import { OrderStore } from './orders/store.ts';
import { LiveBroker } from './orders/live/broker.ts';
import { AnalyticsService } from './analytics/service.ts';
import { mountStatic } from './gateway/static.ts';
import { WEB_DIST } from './web-build.ts';
import { DrainPublisher, readUniverse } from './scale/publisher.ts';
import { lastStoredTicks } from './storage/last-stored.ts';
import { GapRecorder } from './storage/gaps.ts';
import { Backfill } from './storage/backfill.ts';
import { KiteHistorical } from './kite/historical.ts';
import type { LeaseFence } from './core/lease-fence.ts';
import { universeId } from './scale/drain-message.ts';
import { isoOfDay, istDay, istDayStart } from './core/ist.ts';

/** Simulator credentials used when the service runs against its own simulator. */
const SIM_CREDENTIALS = { apiKey: 'sim', accessToken: 'sim' };
/** Ring slots per shard: 64k records (13 MiB) absorb a second of the busiest Kite feed per shard. */
const RING_CAPACITY = 1 << 16;

export interface Service {
  readonly port: number;
  readonly front: Front;
  readonly ingest: KiteIngest;
  readonly pipeline: Pipeline;
  readonly gateway: Gateway;
  readonly sim: Simulator | null;
  readonly tokens: readonly number[];
  /** The batch writer on the STORE slot, and reads of what it stored. */
  readonly storage: Storage;
  readonly keys: KeyStore;
  readonly cache: QuoteCache;
  /** Orders, trades and positions of every key (the paper broker fills against the hub). */
  readonly orders: OrderService;
  /** Option-chain analytics and breadth on the piscina pool; null when ANALYTICS_REFRESH_MS=0. */
  readonly analytics: AnalyticsService | null;
  /** The development key created at this start (printed once), or null. */
  readonly devKey: string | null;
  health(): Record<string, unknown>;
  /** Stop taking data, drain the workers, close everything. Idempotent. */
  close(): Promise<void>;
}

/** How long ROLE=ingest waits for Redis at start before it stops with REDIS_UNAVAILABLE. */
const REDIS_READY_MS = 10_000;

export interface ServiceOptions {
  /** ROLE=ingest: the lease this process holds (src/scale/ingest-role.ts), shown in /health. */
  lease?: { status(): unknown };
  /** ROLE=ingest: the writer commits only while the lease is this process's. */
  fence?: LeaseFence;
  /**
   * Epoch ms, default Date.now. Receive times, the shards' bar clock, gap times and gap repair's
   * schedule read it, so a test can run the simulator and the service on one fast clock (exchange
   * times come from the simulator's). Network timing (reconnects, silence, rate limits) stays real.
   */
  clock?: () => number;
  /** Gap repair: wait past a gap's last minute, on `clock` (src/storage/backfill.ts). Default 15 s. */
  backfillGraceMs?: number;
}

/** How often the shards' shared bar clock is set from an injected clock, real ms. */
const SHARD_CLOCK_MS = 5;

export async function startService(config: Config, log: Logger, opts: ServiceOptions = {}): Promise<Service> {
  const started = Date.now();
  const clock = opts.clock ?? Date.now;
  let sim: Simulator | null = null;
  let rest: KiteRest;
  let wsUrl: string;
  if (config.kite) {
    rest = { apiUrl: config.kiteApiUrl, apiKey: config.kite.apiKey, accessToken: config.kite.accessToken };
    wsUrl = config.kiteWsUrl;
  } else {
    sim = await startSimulator({
      host: '127.0.0.1',
      port: config.sim.port,
      seed: config.sim.seed,
      rate: config.sim.rate,
      ...SIM_CREDENTIALS,
    });
    rest = { apiUrl: sim.apiUrl, ...SIM_CREDENTIALS };
    wsUrl = sim.wsUrl;
  }

  const cleanup: (() => Promise<void> | void)[] = [];
  try {
    const master = await fetchInstruments(rest, log);
    const indexLevel = config.kiteInstruments.length > 0 ? 0 : await fetchIndexLevel(rest, master, log);
    let tokens = selectUniverse(master, {
      strikes: config.optionStrikes,
      expiries: config.optionExpiries,
      indexLevel,
      explicit: config.kiteInstruments,
      today: new Date(clock()),
      onMissing: (missing) => log.warn({ missing }, 'default universe members missing from the instrument master'),
    });
    if (tokens.length === 0) throw new AppError('UNIVERSE_EMPTY', 'no instruments to follow: the instrument master matched nothing. Check KITE_INSTRUMENTS or the master.');

    // ROLE=ingest: each drain goes to the gateways through Redis (src/scale/). A new owner of the
    // same IST day keeps the instrument list its predecessor published, so every gateway's rows
    // stay valid across a hand-over (the option strikes would otherwise follow the index's move).
    let publisher: DrainPublisher | null = null;
    if (config.role === 'ingest') {
      const today = isoOfDay(istDay(new Date()));
      const drains = new DrainPublisher({ url: config.redisUrl!, prefix: config.redisPrefix, log });
      publisher = drains;
      cleanup.push(() => drains.close());
      await drains.whenReady(REDIS_READY_MS);
      const known = new Set(master.map((i) => i.instrumentToken));
      const prior = await readUniverse(drains.redis, drains.keys);
      if (prior && prior.day === today && prior.timeframesMs.join() === config.timeframesMs.join()
        && prior.instruments.every((i) => known.has(i.instrumentToken))) {
        tokens = prior.instruments.map((i) => i.instrumentToken);
        log.info({ universe: prior.id, instruments: tokens.length, from: prior.publishedBy }, 'keeping the instrument list published earlier today');
      }
    }

    let ingest: KiteIngest | null = null;
    const front = new Front({
      shards: config.workers,
      ringCapacity: RING_CAPACITY,
      onBackpressure: (paused) => {
        if (paused) ingest?.pause();
        else ingest?.resume();
      },
    });
    const byToken = new Map(master.map((i) => [i.instrumentToken, i]));
    const universe = tokens.map((t) => byToken.get(t)!).filter((i) => i !== undefined);
    const followed = universe.map((i) => i.instrumentToken);
    // What the store already holds of each instrument, so that Kite's snapshot on subscribe is
    // not stored a second time after a hand-over or a restart (src/storage/last-stored.ts).
    const stored = config.databaseUrl !== null ? await lastStoredTicks(config.databaseUrl, followed, log) : { ticks: [], lastRecvMs: null, earlierTokens: [] };
    if (stored.ticks.length > 0) log.info({ instruments: stored.ticks.length }, 'last stored tick per instrument read: their repeats on subscribe will be dropped as duplicates');
    // An injected clock reaches the shard threads as a shared Float64Array they read for their bar
    // clock (src/pipeline.ts), set from here every SHARD_CLOCK_MS.
    let shardClock: SharedArrayBuffer | null = null;
    if (opts.clock) {
      const buf = new SharedArrayBuffer(8);
      const f = new Float64Array(buf);
      f[0] = clock();
      const t = setInterval(() => { f[0] = clock(); }, SHARD_CLOCK_MS);
      t.unref();
      cleanup.push(() => clearInterval(t));
      shardClock = buf;
    }
    const pipeline = new Pipeline({
      clock: shardClock,
      lastStored: stored.ticks,
      rings: front.rings,
      instruments: universe,
      mode: config.kiteMode,
      timeframesMs: config.timeframesMs,
      wait: config.pipelineWait,
      onError: (shard, err) => log.error({ shard, err }, 'shard worker failed'),
    });
    cleanup.push(() => pipeline.stop());
    // The STORE slot: the batch writer thread (workers/writer/), restarted from here if it dies.
    const storage = new Storage({
      databaseUrl: config.databaseUrl,
      fence: opts.fence ?? null,
      dataDir: config.dataDir,
      ...config.storage,
      ticks: pipeline.shards.map((s) => s.ticksOut),
      bars: pipeline.shards.map((s) => s.barsOut),
      doorbells: pipeline.doorbells,
      instruments: master,
      log,
    });
    // On a failed start the rings never close: give the writer a moment, not the full drain.
    cleanup.push(() => storage.close(2000));
    // The FEED slot: latest state, live feeds and quarantine logging hang off one hub.
    const hub = new FeedHub(universe, config.timeframesMs);
    hub.add(quarantineLog(log, hub.symbols));
    // Latest quote and bar to the cache: coalesced in memory, written in batches off the hot path.
    const pub = publisher;
    const cache = createCache(config, log, pub ? { key: pub.keys.stamp, value: () => pub.stampValue() } : undefined);
    cleanup.push(() => cache.close());
    hub.add({ tick: (f, o) => cache.putTick(f, o), bar: (f, o) => cache.putBar(f, o) });
    if (pub) {
      hub.add(pub);
      await pub.publishUniverse({
        id: universeId(tokens), day: isoOfDay(istDay(new Date())), timeframesMs: [...config.timeframesMs], instruments: universe,
        publishedBy: `${os.hostname()}:${process.pid}`,
      }, master);
    }

    let feed: Feed | undefined;
    let kiteWs: KiteWs | undefined;
    let replays: ReplayManager | undefined;
    // Chain analytics and breadth: snapshots of the hub's latest ticks, computed on a piscina pool;
    // each refresh's bytes go to the cache (for REST and other processes) and to /ws subscribers.
    const analytics = config.analytics.refreshMs > 0
      ? new AnalyticsService({
        settings: config.analytics,
        instruments: universe,
        latestTicks: hub.latestTicks,
        hasTick: hub.hasTick,
        db: () => storage.db(),
        publish: (key, bytes) => {
          cache.putAnalytics(key, bytes.json);
          feed?.publishAnalytics(key, bytes.records, bytes.plain);
          pub?.analytics(key, bytes.records, bytes.plain);
        },
        log,
      })
      : null;
    if (analytics) cleanup.push(() => analytics.close());
    const keys = await KeyStore.load({ configured: config.apiKeys, file: keysFilePath(config.dataDir) });
    // `npm run keys -- create/revoke` edits the file; the running service follows within a second.
    const stopKeyWatch = followKeyFile(keys, log, (removed) => {
      feed?.dropKeys(removed);
      kiteWs?.dropKeys(removed);
    });
    cleanup.push(stopKeyWatch);
    // Embedded mode (simulator or embedded storage) with no key: make one so the feeds are usable
    // at once. A production deployment with no key refuses every client, and says so.
    const embedded = config.kite === null || config.databaseUrl === null;
    const devKey = embedded ? await ensureDevKey(keys, log) : null;
    if (keys.size === 0) log.warn('no API keys: every feed and REST client will be refused. Set API_KEYS or run `npm run keys -- create NAME`.');

    // Set once the order service exists (below); Kite's order updates before then are only logged.
    let orderUpdates: OrderService | null = null;
    ingest = new KiteIngest({
      wsUrl,
      apiKey: rest.apiKey,
      accessToken: rest.accessToken,
      tokens,
      mode: config.kiteMode,
      connections: config.kiteConnections,
      backoffMaxMs: config.kiteReconnectMaxMs,
      log,
      clock,
      onBinary: opts.clock ? (msg, slot, seq) => front.onBinary(msg, slot, seq, clock() * 1000) : (msg, slot, seq) => front.onBinary(msg, slot, seq),
      onText: (text) => {
        const m = parseTextMessage(text, front.stats);
        if (m?.type === 'error') log.warn({ kite: m.data }, 'kite error message');
        else if (m?.type === 'order') {
          // Kite's order update on the ticker: to the live broker, which moves only forward.
          if (!orderUpdates?.liveUpdate(m.data as Record<string, unknown>, 'ticker')) log.info({ orderId: m.data.order_id, status: m.data.status }, 'kite order update (no live broker to take it)');
        }
      },
    });
    const ing = ingest;
    ing.on('fatal', (err: Error) => log.fatal({ code: (err as AppError).code }, err.message));
    // Every upstream outage as a gap (src/storage/gaps.ts, GET /api/gaps); for an ingest that took
    // over from another owner, the hand-over too: from the store's last tick to this one's first data.
    // Gap repair: each gap's minute bars from Kite's historical API, through the official client
    // and the process's one limiter of Kite's 3 requests a second (src/kite/historical.ts).
    const historical = new KiteHistorical({ apiUrl: rest.apiUrl, apiKey: rest.apiKey, accessToken: rest.accessToken, timeoutMs: config.orders.kiteTimeoutMs });
    const backfill = new Backfill({
      transact: (st) => storage.transact(st),
      db: () => storage.db(),
      minutes: (token, fromMs, toMs) => historical.minutes(token, fromMs, toMs),
      timeframesMs: config.timeframesMs,
      clock,
      graceMs: opts.backfillGraceMs,
      log,
    });
    cleanup.push(() => backfill.close());
    const gaps = new GapRecorder({ transact: (st) => storage.transact(st), log, onRecorded: () => backfill.poke() });
    cleanup.push(() => gaps.close());
    ing.on('gap', (g: FeedGap) => gaps.record({ startMs: g.startMs, endMs: g.endMs, conn: g.slot, cause: g.cause, tokens: g.tokens }));
    // A start that finds today's ticks in the store follows an earlier process: what that one
    // received after its last committed tick (a SIGKILL's in-flight frames) and everything until
    // this one's first data is gone, and is a gap like an outage. A store last written on an
    // earlier day is a new session, not a gap.
    // The gap names the instruments of the earlier process too: its strikes, chosen around the
    // index level when it started, may not be this one's (src/storage/last-stored.ts).
    const handOver = opts.fence !== undefined && BigInt(opts.fence.token) > 1n;
    if (stored.lastRecvMs !== null && (handOver || istDayStart(stored.lastRecvMs) === istDayStart(clock()))) {
      const since = stored.lastRecvMs;
      const cause = handOver ? `ingest hand-over (lease token ${opts.fence!.token})` : 'service restart';
      const affected = [...new Set([...followed, ...stored.earlierTokens])];
      ing.once('connect', () => gaps.record({ startMs: since, endMs: clock(), conn: null, cause, tokens: affected }));
    }
    ing.once('connect', () => gaps.session(clock(), followed));
    ing.start();
    backfill.start();
    cleanup.push(() => ing.stop());

    const rings = () => front.producers.map((p, i) => ({ shard: i, depth: p.depth(), highWater: p.highWater(), drops: p.drops(), capacity: p.capacity }));
    // Bars and ticks for REST history and /ready: the reader thread's pool on PostgreSQL, the writer
    // thread on the embedded database (src/storage/supervisor.ts db()).
    const historyDb: Db | null = storage.db();
    const health = (): Record<string, unknown> => ({
      role: config.role,
      ...(opts.lease ? { lease: opts.lease.status() } : {}),
      ...(pub ? { publisher: { epoch: pub.epoch, ...pub.stats } } : {}),
      uptimeS: Math.round((Date.now() - started) / 1000),
      feed: {
        source: sim ? 'simulator' : 'kite',
        connected: ing.connected(),
        paused: ing.isPaused(),
        instruments: tokens.length,
        connections: ing.stats(),
      },
      decode: {
        frames: front.stats.frames,
        packets: front.stats.packets,
        heartbeats: front.stats.heartbeats,
        errors: Object.fromEntries(DECODE_ERROR_NAMES.map((n, i) => [n, front.stats.errors[i]])),
      },
      rings: rings(),
      pipeline: { shards: pipeline.shards.length, ...pipeline.counters() },
      store: storage.stats(),
      live: { ticks: hub.ticks, bars: hub.bars, feed: feed?.stats, kite: kiteWs?.stats },
      cache: cache.stats(),
      analytics: analytics?.stats() ?? null,
      backfill: backfill.stats,
      orders: { ...orders.stats(), live: orders.liveStatus(), reconciliation: orders.reconciliation() },
    });

    // Orders: one service for both APIs; the paper broker matches on the hub's ticks.
    const masterBySymbol = new Map(master.map((i) => [`${i.exchange}:${i.tradingsymbol}`, i]));
    const orders: OrderService = new OrderService({
      config: config.orders,
      store: new OrderStore({ transact: (st) => storage.transact(st), query: (text, params) => storage.db().query(text, params) }),
      instrument: (exchange, symbol) => masterBySymbol.get(`${exchange}:${symbol}`) ?? null,
      instrumentByToken: (token) => byToken.get(token) ?? null,
      market: hub,
      rows: hub.rows,
      modeOf: (key) => keys.modeOf(key),
      // Live keys' orders go to Kite through the official client (with Kite credentials only);
      // with ROLE=ingest the gateways take orders, not this process.
      live: config.kite !== null && config.role === 'all'
        ? (events) => new LiveBroker({
          apiUrl: rest.apiUrl, apiKey: rest.apiKey, accessToken: rest.accessToken, events,
          timeoutMs: config.orders.kiteTimeoutMs, pollMs: config.orders.livePollMs,
          // Called only after construction, when `orders` exists.
          lookup: { byBrokerId: (id) => orders.orderByBrokerId(id), byId: (id) => orders.orderById(id) },
          log,
        })
        : undefined,
      push: {
        order: (key, row) => {
          kiteWs?.orderUpdate(key, row);
          feed?.orderUpdate(key, row);
        },
        positions: (key, rows) => {
          feed?.positionUpdate(key, rows);
        },
      },
      // ROLE=ingest takes no orders and works none: the gateways work theirs (a working paper
      // order worked here too would fill twice).
      works: config.role === 'ingest' ? async () => new Set<string>() : undefined,
      log,
    });
    await orders.start();
    orderUpdates = orders;
    // Live orders: reconcile with Kite's book now, and after every upstream outage (a reconnect).
    void orders.reconcile();
    let upstreamDown = false;
    ing.on('disconnect', () => { upstreamDown = true; });
    ing.on('connect', () => {
      if (!upstreamDown) return;
      upstreamDown = false;
      void orders.reconcile();
    });
    cleanup.push(() => orders.close());
    hub.add({ tick: (f, o, row) => orders.tick(f, o, row) });

    const gateway = await startGateway({
      host: config.host,
      port: config.port,
      health,
      routes: (app) => {
        // ROLE=ingest serves no clients: the gateways do (/ws, /kite, orders); REST reads stay for operators.
        if (config.role === 'all') {
          feed = new Feed(app, { hub, auth: keys, log, analytics: analytics ?? undefined, ...config.ws });
          kiteWs = new KiteWs(app, hub, keys, log, LIVE_KITE_MOUNT, config.ws);
          // Replays read what this process stored: on PostgreSQL each session's thread opens its
          // own connection; the embedded database is read through the writer thread (storage.db()).
          if (config.replayMaxSessions > 0) {
            replays = new ReplayManager({
              app, instruments: universe, timeframesMs: config.timeframesMs, graceMs: DEFAULT_BAR_GRACE_MS, auth: keys, log,
              source: config.databaseUrl !== null ? { kind: 'postgres', url: config.databaseUrl } : { kind: 'proxy' },
              query: (text, params) => storage.db().query(text, params),
              maxSessions: config.replayMaxSessions,
              paperOrders: replayPaperOrders({
                config: config.orders, log,
                instrument: (exchange, symbol) => masterBySymbol.get(`${exchange}:${symbol}`) ?? null,
                instrumentByToken: (token) => byToken.get(token) ?? null,
              }),
            });
          }
        }
        // After the /kite WebSocket: the Kite REST mounts a /kite/* catch-all for Kite-style 404s.
        const f = feed;
        const k = kiteWs;
        mountRest(app, {
          config,
          auth: keys,
          hub,
          quotes: cache,
          db: historyDb,
          master: () => master,
          orders: config.role === 'all' ? { orders, postbackSecret: config.orders.kiteApiSecret } : undefined,
          pcr: (name, expiry) => pipeline.pcr(name, expiry),
          analytics: analytics ? cache : undefined,
          ivLookbackDays: config.analytics.ivLookbackDays,
          replays,
          ready: readiness({ feedConnected: () => ing.connected(), db: historyDb, cache, rings, live: () => orders.liveStatus() }),
          metrics: {
            pipeline: () => pipeline.counters(),
            decode: () => ({ ...front.stats, errors: front.stats.errorCounts() }),
            rings,
            feed: () => ({ connected: ing.connected(), connections: ing.stats() }),
            ws: f ? () => f.stats : undefined,
            kiteWs: k ? () => k.stats : undefined,
            cache: () => cache.stats(),
            analytics: analytics ? () => analytics.stats() : undefined,
          },
          log,
        });
        // The dashboard's files at / (built by `npm start` into web/dist; src/web-build.ts).
        const site = mountStatic(app, WEB_DIST);
        if (site.paths.length === 0) log.warn('the dashboard is not built (web/dist): / answers 503; `npm start` builds it');
      },
    });
    if (feed) hub.add(feed);
    if (kiteWs) hub.add(kiteWs);
    hub.start(pipeline);
    analytics?.start();
    cleanup.push(() => gateway.close());
    cleanup.push(() => replays?.closeAll());

    let closing: Promise<void> | null = null;
    return {
      port: gateway.port,
      front,
      ingest: ing,
      pipeline,
      gateway,
      sim,
      tokens,
      storage,
      keys,
      cache,
      orders,
      analytics,
      devKey,
      health,
      close() {
        closing ??= (async () => {
          stopKeyWatch();
          await replays?.closeAll();
          feed?.close();
          kiteWs?.close();
          gateway.close();
          backfill.close();
          await ing.stop();
          await front.close();
          await pipeline.stop();
          await hub.done();
          await analytics?.close();
          await orders.close();
          await storage.close();
          await cache.close();
          await publisher?.close();
          await sim?.close();
        })();
        return closing;
      },
    };
  } catch (e) {
    for (const c of cleanup.reverse()) await c();
    await sim?.close();
    throw e;
  }
}
