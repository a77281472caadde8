/**
 * `GET /metrics`: Prometheus text format (prom-client), read from the modules' own counters at
 * scrape time. Nothing is incremented per tick: each series has a `collect` callback that copies
 * the module's counter into it when Prometheus scrapes, so the hot path keeps its plain numbers.
 * The one series fed per request is the REST latency histogram.
 *
 * Every source is optional: a module that is not there (a service started without the writer, the
 * cache without Redis...) exports no series rather than zeros that look like data.
 *
 * | series                                   | type      | labels              | from              |
 * |------------------------------------------|-----------|---------------------|-------------------|
 * | n50_ticks_in_total / n50_ticks_out_total | counter   |                     | pipeline          |
 * | n50_quarantined_ticks_total              | counter   | reason              | pipeline          |
 * | n50_duplicate_ticks_total                | counter   |                     | pipeline          |
 * | n50_bars_closed_total                    | counter   |                     | pipeline          |
 * | n50_decode_frames_total, _packets_total  | counter   |                     | decode (front)    |
 * | n50_decode_errors_total                  | counter   | reason              | decode (front)    |
 * | n50_ring_depth, _high_water, _capacity   | gauge     | shard               | rings (front)     |
 * | n50_ring_drops_total                     | counter   | shard               | rings (front)     |
 * | n50_feed_connected                       | gauge     |                     | feed (ingest)     |
 * | n50_upstream_connected, _frames_total, _reconnects_total | gauge/counter | slot | feed (ingest) |
 * | n50_writer_rows_total                    | counter   |                     | writer            |
 * | n50_writer_rows_per_second               | gauge     |                     | writer            |
 * | n50_writer_lag_seconds                   | gauge     |                     | writer            |
 * | n50_spill_bytes                          | gauge     |                     | writer            |
 * | n50_ws_clients                           | gauge     | endpoint (ws, kite) | ws, kiteWs        |
 * | n50_ws_ticks_published_total             | counter   | endpoint            | ws, kiteWs        |
 * | n50_ws_slow_client_actions_total         | counter   | action (conflate, close) | ws           |
 * | n50_ws_stall_closes_total                | counter   | endpoint            | ws, kiteWs        |
 * | n50_ws_max_unsent_bytes                  | gauge     | endpoint            | ws, kiteWs        |
 * | n50_cache_puts_total, _errors_total      | counter   |                     | cache             |
 * | n50_cache_pending                        | gauge     |                     | cache             |
 * | n50_analytics_refreshes_total, _skipped_total, _failures_total | counter | | analytics      |
 * | n50_analytics_refresh_seconds, _main_thread_seconds | gauge |            | analytics (the last refresh) |
 * | n50_rest_request_duration_seconds        | histogram | route, method, status | every REST answer |
 * | process_*, nodejs_* (prom-client defaults, n50_ prefix) | | |                |
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

export interface MetricsSources {
  pipeline?: () => {
    ticksIn: number;
    ticksOut: number;
    quarantined: number;
    duplicates: number;
    barsClosed: number;
    quarantineByReason: Readonly<Record<string, number>>;
  };
  decode?: () => { frames: number; packets: number; errors: Readonly<Record<string, number>> };
  rings?: () => readonly { shard: number; depth: number; highWater: number; drops: number; capacity: number }[];
  feed?: () => {
    connected: boolean;
    connections?: readonly { slot: number; connected: boolean; connects: number; frames: number }[];
  };
  writer?: () => {
    /** Rows committed since start. */
    rows: number;
    /** Recent commit rate, if the writer measures one. */
    rowsPerSec?: number;
    /** Age of the oldest record not yet committed, ms. */
    lagMs: number;
    /** Bytes waiting in the on-disk spill. */
    spillBytes: number;
  };
  ws?: () => {
    clients: number; subscriptionSets: number; ticksPublished: number; conflations: number; slowCloses: number;
    stallCloses?: number; maxUnsentBytes?: number;
  };
  kiteWs?: () => { clients: number; packets: number; stallCloses?: number; maxUnsentBytes?: number };
  cache?: () => { puts: number; errors: number; pending: number };
  analytics?: () => { refreshes: number; skipped: number; failures: number; lastLatencyMs: number; lastMainUs: number };
}

export const REST_LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

export class RestMetrics {
  readonly registry = new Registry();
  private readonly latency: Histogram<'route' | 'method' | 'status'>;

  constructor(sources: MetricsSources, opts: { defaults?: boolean } = {}) {
    const reg = this.registry;
    if (opts.defaults !== false) collectDefaultMetrics({ register: reg, prefix: 'n50_' });
    this.latency = new Histogram({
      name: 'n50_rest_request_duration_seconds',
      help: 'REST request latency, from the request arriving to the answer written',
      labelNames: ['route', 'method', 'status'],
      buckets: REST_LATENCY_BUCKETS,
      registers: [reg],
    });

    const { pipeline, decode, rings, feed, writer, ws, kiteWs, cache, analytics } = sources;
    if (pipeline) {
      counter(reg, 'n50_ticks_in_total', 'Ticks the pipeline shards took in', () => pipeline().ticksIn);
      counter(reg, 'n50_ticks_out_total', 'Canonical ticks the shards emitted', () => pipeline().ticksOut);
      counter(reg, 'n50_duplicate_ticks_total', 'Ticks dropped as duplicates across upstream connections', () => pipeline().duplicates);
      counter(reg, 'n50_bars_closed_total', 'Bars closed by the aggregate stage', () => pipeline().barsClosed);
      labelled(reg, 'counter', 'n50_quarantined_ticks_total', 'Ticks that failed validation, by reason', ['reason'],
        () => Object.entries(pipeline().quarantineByReason).map(([reason, v]) => [{ reason }, v]));
    }
    if (decode) {
      counter(reg, 'n50_decode_frames_total', 'Kite binary frames decoded', () => decode().frames);
      counter(reg, 'n50_decode_packets_total', 'Kite packets decoded', () => decode().packets);
      labelled(reg, 'counter', 'n50_decode_errors_total', 'Malformed Kite frames and packets, by reason', ['reason'],
        () => Object.entries(decode().errors).map(([reason, v]) => [{ reason }, v]));
    }
    if (rings) {
      const per = (f: (r: RingStat) => number) => () => rings().map((r) => [{ shard: String(r.shard) }, f(r)] as Sample);
      labelled(reg, 'gauge', 'n50_ring_depth', 'Records waiting in each front ring', ['shard'], per((r) => r.depth));
      labelled(reg, 'gauge', 'n50_ring_high_water', 'Deepest each front ring has been', ['shard'], per((r) => r.highWater));
      labelled(reg, 'gauge', 'n50_ring_capacity', 'Slots in each front ring', ['shard'], per((r) => r.capacity));
      labelled(reg, 'counter', 'n50_ring_drops_total', 'Records a full front ring could not take', ['shard'], per((r) => r.drops));
    }
    if (feed) {
      gauge(reg, 'n50_feed_connected', '1 when every upstream Kite connection is up', () => (feed().connected ? 1 : 0));
      const slots = (f: (c: SlotStat) => number) =>
        () => (feed().connections ?? []).map((c) => [{ slot: String(c.slot) }, f(c)] as Sample);
      labelled(reg, 'gauge', 'n50_upstream_connected', '1 when this upstream connection is up', ['slot'], slots((c) => (c.connected ? 1 : 0)));
      labelled(reg, 'counter', 'n50_upstream_connects_total', 'Connections made by this upstream slot', ['slot'], slots((c) => c.connects));
      labelled(reg, 'counter', 'n50_upstream_frames_total', 'Frames received on this upstream slot', ['slot'], slots((c) => c.frames));
    }
    if (writer) {
      counter(reg, 'n50_writer_rows_total', 'Rows the batch writer committed', () => writer().rows);
      gauge(reg, 'n50_writer_lag_seconds', 'Age of the oldest record not yet committed', () => writer().lagMs / 1000);
      gauge(reg, 'n50_spill_bytes', 'Bytes waiting in the writer\'s on-disk spill', () => writer().spillBytes);
      // The writer's own rate when it measures one, else the rate since the previous scrape.
      let last = { rows: 0, at: 0 };
      gauge(reg, 'n50_writer_rows_per_second', 'Recent commit rate of the batch writer', () => {
        const w = writer();
        const now = performance.now();
        const rate = w.rowsPerSec ?? (last.at > 0 && now > last.at ? ((w.rows - last.rows) * 1000) / (now - last.at) : 0);
        last = { rows: w.rows, at: now };
        return rate;
      });
    }
    if (ws || kiteWs) {
      labelled(reg, 'gauge', 'n50_ws_clients', 'Connected WebSocket clients', ['endpoint'], () => [
        ...(ws ? [[{ endpoint: 'ws' }, ws().clients] as Sample] : []),
        ...(kiteWs ? [[{ endpoint: 'kite' }, kiteWs().clients] as Sample] : []),
      ]);
      labelled(reg, 'counter', 'n50_ws_ticks_published_total', 'Ticks (msgpack) or packets (Kite) published to WebSocket topics', ['endpoint'], () => [
        ...(ws ? [[{ endpoint: 'ws' }, ws().ticksPublished] as Sample] : []),
        ...(kiteWs ? [[{ endpoint: 'kite' }, kiteWs().packets] as Sample] : []),
      ]);
      labelled(reg, 'counter', 'n50_ws_stall_closes_total', 'WebSocket clients closed for taking nothing for WS_STALL_CLOSE_MS', ['endpoint'], () => [
        ...(ws ? [[{ endpoint: 'ws' }, ws().stallCloses ?? 0] as Sample] : []),
        ...(kiteWs ? [[{ endpoint: 'kite' }, kiteWs().stallCloses ?? 0] as Sample] : []),
      ]);
      labelled(reg, 'gauge', 'n50_ws_max_unsent_bytes', 'Unsent bytes of the fullest WebSocket client at the last slow-client check', ['endpoint'], () => [
        ...(ws ? [[{ endpoint: 'ws' }, ws().maxUnsentBytes ?? 0] as Sample] : []),
        ...(kiteWs ? [[{ endpoint: 'kite' }, kiteWs().maxUnsentBytes ?? 0] as Sample] : []),
      ]);
    }
    if (ws) {
      labelled(reg, 'counter', 'n50_ws_slow_client_actions_total', 'Slow feed clients conflated or closed', ['action'], () => {
        const s = ws();
        return [[{ action: 'conflate' }, s.conflations], [{ action: 'close' }, s.slowCloses]];
      });
      gauge(reg, 'n50_ws_subscription_sets', 'Distinct subscription sets on /ws (clients following the same instruments and modes share one frame per drain)', () => ws().subscriptionSets);
    }
    if (cache) {
      counter(reg, 'n50_cache_puts_total', 'Ticks and bars the quote cache took', () => cache().puts);
      counter(reg, 'n50_cache_errors_total', 'Failed cache (Redis) operations', () => cache().errors);
      gauge(reg, 'n50_cache_pending', 'Cache values changed since last written', () => cache().pending);
    }
    if (analytics) {
      counter(reg, 'n50_analytics_refreshes_total', 'Chain analytics refreshes completed on the pool', () => analytics().refreshes);
      counter(reg, 'n50_analytics_skipped_total', 'Analytics refreshes skipped because the previous one was still running', () => analytics().skipped);
      counter(reg, 'n50_analytics_failures_total', 'Analytics refreshes that failed on the pool', () => analytics().failures);
      gauge(reg, 'n50_analytics_refresh_seconds', 'The last refresh, from posting the snapshot to publishing the answer', () => analytics().lastLatencyMs / 1000);
      gauge(reg, 'n50_analytics_main_thread_seconds', 'The main thread\'s share of the last refresh (snapshot, post, publish)', () => analytics().lastMainUs / 1e6);
    }
  }

  observe(route: string, method: string, status: number, seconds: number): void {
    this.latency.observe({ route, method, status: String(status) }, seconds);
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}

type Sample = [Record<string, string>, number];
type RingStat = ReturnType<NonNullable<MetricsSources['rings']>>[number];
type SlotStat = NonNullable<ReturnType<NonNullable<MetricsSources['feed']>>['connections']>[number];

/**
 * A counter whose value is copied from `read` at scrape. prom-client counters only go up, so
 * collect resets and re-adds: the exported value is exactly the module's counter.
 */
function counter(reg: Registry, name: string, help: string, read: () => number): void {
  new Counter({
    name, help, registers: [reg],
    collect() {
      this.reset();
      const v = read();
      if (v > 0) this.inc(v);
    },
  });
}

function gauge(reg: Registry, name: string, help: string, read: () => number): void {
  new Gauge({ name, help, registers: [reg], collect() { this.set(read()); } });
}

function labelled(reg: Registry, type: 'counter' | 'gauge', name: string, help: string, labelNames: string[], read: () => Sample[]): void {
  if (type === 'counter') {
    new Counter({
      name, help, labelNames, registers: [reg],
      collect() {
        this.reset();
        for (const [labels, v] of read()) this.inc(labels, v > 0 ? v : 0);
      },
    });
  } else {
    new Gauge({
      name, help, labelNames, registers: [reg],
      collect() {
        this.reset();
        for (const [labels, v] of read()) this.set(labels, v);
      },
    });
  }
}
