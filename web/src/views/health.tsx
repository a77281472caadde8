/**
 * The service's health along the bottom of the page: `GET /health` every second (it needs no key),
 * rates made from the differences of its counters, each with a sparkline of the last minute drawn
 * as an inline SVG polyline (no chart library for 60 points).
 *
 * Pipeline lag is shown two ways: the feed's own latency (service receive → applied in this page,
 * from the `rt` of the selected row's full ticks; the service and the browser read the same clock
 * only when on one machine) and the records waiting in the front rings and for the database.
 */
import { signal } from '@preact/signals';
import { useEffect } from 'preact/hooks';
import { fmtBytes, fmtInt } from '../format.ts';
import { feedLatencyMs } from '../store.ts';

const N = 60;

interface HealthJson {
  status: string;
  uptimeS: number;
  feed: { source: string; connected: boolean; connections: { slot: number; tokens: number; connected: boolean; connects: number; disconnects: number; lastMessageAt: number }[] };
  rings: { shard: number; depth: number; drops: number; capacity: number }[];
  pipeline: { ticksIn: number; ticksOut: number; quarantined: number; duplicates: number; quarantineByReason: Record<string, number> };
  store: { state: string; rowsPerSec: number; lagRecords: { ticks: number; bars: number }; writeLatencyMs: { p50: number | string | null; p99: number | string | null }; writeLatencyLastMinuteMs?: { p50: number | string | null; p99: number | string | null }; spill: { batches: number; bytes: number; full: boolean } } | null;
  live: { feed: { clients: number; conflations: number; slowCloses: number }; kite: { clients: number } } | null;
}

interface Series { values: number[] }
const series = {
  ticks: { values: [] as number[] },
  lag: { values: [] as number[] },
  dups: { values: [] as number[] },
  quar: { values: [] as number[] },
  rows: { values: [] as number[] },
  spill: { values: [] as number[] },
  clients: { values: [] as number[] },
};
const health = signal<HealthJson | null>(null);
const healthError = signal<string | null>(null);
/** Bumped after each sample, so the tiles re-render once a second. */
const tick = signal(0);
let prev: { at: number; h: HealthJson } | null = null;

function push(s: Series, v: number): void {
  s.values.push(v);
  if (s.values.length > N) s.values.shift();
}

function sample(h: HealthJson): void {
  const now = performance.now();
  const dt = prev ? (now - prev.at) / 1000 : 0;
  const rate = (a: number, b: number) => (dt > 0 ? Math.max(0, (a - b) / dt) : 0);
  const p = prev?.h;
  push(series.ticks, p ? rate(h.pipeline.ticksOut, p.pipeline.ticksOut) : 0);
  push(series.dups, p ? rate(h.pipeline.duplicates, p.pipeline.duplicates) : 0);
  push(series.quar, p ? rate(h.pipeline.quarantined, p.pipeline.quarantined) : 0);
  push(series.lag, feedLatencyMs.peek() ?? 0);
  push(series.rows, h.store?.rowsPerSec ?? 0);
  push(series.spill, h.store?.spill.bytes ?? 0);
  push(series.clients, (h.live?.feed.clients ?? 0) + (h.live?.kite.clients ?? 0));
  prev = { at: now, h };
  health.value = h;
  tick.value++;
}

function poll(): () => void {
  let stop = false;
  let timer: ReturnType<typeof setTimeout> | null = null;
  const run = async () => {
    const t0 = performance.now();
    try {
      const r = await fetch('/health', { cache: 'no-store' });
      const h = (await r.json()) as HealthJson;
      if (stop) return;
      healthError.value = null;
      sample(h);
    } catch (e) {
      if (!stop) healthError.value = `/health did not answer: ${(e as Error).message}`;
    }
    if (!stop) timer = setTimeout(run, Math.max(0, 1000 - (performance.now() - t0)));
  };
  void run();
  return () => {
    stop = true;
    if (timer) clearTimeout(timer);
  };
}

function Spark({ s, cls = '' }: { s: Series; cls?: string }) {
  const v = s.values;
  const w = 96;
  const h = 22;
  if (v.length < 2) return <svg class={`spark ${cls}`} width={w} height={h} aria-hidden="true" />;
  const max = Math.max(...v);
  const min = Math.min(0, ...v);
  const span = max - min || 1;
  const step = w / (N - 1);
  const x0 = w - (v.length - 1) * step;
  let pts = '';
  for (let i = 0; i < v.length; i++) pts += `${(x0 + i * step).toFixed(1)},${(h - 1 - ((v[i] - min) / span) * (h - 2)).toFixed(1)} `;
  return (
    <svg class={`spark ${cls}`} width={w} height={h} viewBox={`0 0 ${w} ${h}`} aria-hidden="true">
      <polyline points={pts} fill="none" stroke="currentColor" stroke-width="1.25" vector-effect="non-scaling-stroke" />
    </svg>
  );
}

function Tile({ label, value, sub, s, warn, testid }: { label: string; value: string; sub?: string; s?: Series; warn?: boolean; testid?: string }) {
  return (
    <div class={`tile ${warn ? 'warn' : ''}`} data-testid={testid}>
      <div class="tile-top">
        <span class="tile-label">{label}</span>
        <b class="tile-value num">{value}</b>
      </div>
      {s ? <Spark s={s} /> : null}
      {sub && <div class="tile-sub" title={sub}>{sub}</div>}
    </div>
  );
}

const last = (s: Series) => s.values[s.values.length - 1] ?? 0;

export function Health() {
  useEffect(() => poll(), []);
  void tick.value;
  const h = health.value;
  if (!h) return <div class="health" data-testid="health"><div class="empty">{healthError.value ?? 'Reading /health…'}</div></div>;
  const ringDepth = h.rings.reduce((a, r) => a + r.depth, 0);
  const drops = h.rings.reduce((a, r) => a + r.drops, 0);
  const reasons = Object.entries(h.pipeline.quarantineByReason).filter(([, n]) => n > 0);
  const lat = feedLatencyMs.peek();
  const slots = h.feed.connections;
  return (
    <div class="health" data-testid="health" data-status={h.status}>
      <Tile testid="health-ticks" label="Ticks/s" value={fmtInt(last(series.ticks))} sub={`in ${fmtInt(h.pipeline.ticksIn)} · out ${fmtInt(h.pipeline.ticksOut)}`} s={series.ticks} />
      <Tile testid="health-lag" label="Pipeline lag" value={lat == null ? '—' : `${lat.toFixed(0)} ms`} sub={`ring ${fmtInt(ringDepth)} rec${drops ? ` · ${drops} dropped` : ''} · db ${fmtInt(h.store?.lagRecords.ticks ?? 0)} rec`} s={series.lag} warn={drops > 0} />
      <Tile testid="health-dups" label="Duplicates" value={fmtInt(h.pipeline.duplicates)} sub={`${last(series.dups).toFixed(1)}/s`} s={series.dups} />
      <Tile testid="health-quarantine" label="Quarantined" value={fmtInt(h.pipeline.quarantined)} sub={reasons.length ? reasons.map(([r, n]) => `${r} ${n}`).join(' · ') : 'by reason: none'} s={series.quar} warn={h.pipeline.quarantined > 0} />
      <Tile testid="health-db" label="DB rows/s" value={fmtInt(h.store?.rowsPerSec ?? 0)} sub={h.store ? `${h.store.state} · p99 ${h.store.writeLatencyLastMinuteMs?.p99 ?? h.store.writeLatencyMs.p99 ?? '—'} ms (1 min)` : 'no database'} s={series.rows} warn={!!h.store && h.store.state !== 'up'} />
      <Tile testid="health-spill" label="Spill" value={fmtBytes(h.store?.spill.bytes ?? 0)} sub={h.store ? `${h.store.spill.batches} batches${h.store.spill.full ? ' · FULL' : ''}` : ''} s={series.spill} warn={!!h.store && h.store.spill.batches > 0} />
      <Tile testid="health-clients" label="Clients" value={fmtInt(last(series.clients))} sub={`/ws ${h.live?.feed.clients ?? 0} · /kite ${h.live?.kite.clients ?? 0}${h.live?.feed.conflations ? ` · ${h.live.feed.conflations} conflated` : ''}`} s={series.clients} />
      <div class={`tile kite ${slots.every((c) => c.connected) ? '' : 'warn'}`} data-testid="health-kite">
        <div class="tile-top"><span class="tile-label">Kite · {h.feed.source}</span></div>
        <div class="slots">
          {slots.map((c) => (
            <span class={`slot ${c.connected ? 'ok' : 'bad'}`} data-testid="kite-slot" data-connected={String(c.connected)} title={`slot ${c.slot}: ${c.tokens} tokens, ${c.connects} connects, ${c.disconnects} disconnects`}>
              <i class="dot" />#{c.slot} {c.connected ? 'up' : 'down'} <span class="muted">{c.tokens}</span>
            </span>
          ))}
        </div>
        <div class="tile-sub">{healthError.value ?? `${h.status} · up ${fmtUptime(h.uptimeS)}`}</div>
      </div>
    </div>
  );
}

function fmtUptime(s: number): string {
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.floor(s / 60)}m`;
  return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
}
