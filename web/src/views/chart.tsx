/**
 * Candlesticks of the selected instrument with volume and VWAP (lightweight-charts).
 *
 * History is read from `GET /api/bars` (closed bars; today's session for intraday timeframes, about
 * four months for 1d); the bar in progress and every later one come from the feed's bar updates for
 * this timeframe, which the store follows for the selected instrument. Updates that arrive while the
 * history loads are kept and laid over it, so the seam between the two loses no bar. Scrolling to
 * the left edge loads the chunk before the oldest bar.
 *
 * Times: lightweight-charts draws UTC; bucket starts are shifted by +05:30 so the axis reads IST
 * wall clock (a day bar, starting 00:00 IST, lands on its own date).
 *
 * VWAP: intraday, the running VWAP (Σ bar VWAP × volume / Σ volume, reset at each IST day) from
 * the first bar loaded of the day: the session's for 1m to 15m, which load the whole day, and the
 * shown window's for 1s, which loads half an hour at a time. On 1d, each day's own VWAP. An index
 * has no volume and so no VWAP.
 */
import { effect, signal } from '@preact/signals';
import { useEffect, useRef } from 'preact/hooks';
import {
  CandlestickSeries, ColorType, createChart, CrosshairMode, HistogramSeries, LineSeries,
  type IChartApi, type ISeriesApi, type LogicalRange, type MouseEventParams, type UTCTimestamp,
} from 'lightweight-charts';
import type { FeedBar } from '../../../src/client/index.ts';
import { api, type ApiBar, type BarsAnswer } from '../api.ts';
import { DAY_MS, displayName, fmtPrice, fmtQty, IST_OFFSET_MS, istDayStart } from '../format.ts';
import { byToken, chartTf, hooks, onBars, reconnects, selected, theme, TIMEFRAMES, type Timeframe } from '../store.ts';

/** How far back the first load reaches, and each older chunk. */
const OLDER_CHUNK_MS: Record<Timeframe, number> = { '1s': 30 * 60_000, '1m': DAY_MS, '5m': 3 * DAY_MS, '15m': 7 * DAY_MS, '1d': 365 * DAY_MS };
/** Consecutive empty older chunks after which there is taken to be nothing older. */
const EMPTY_CHUNKS_TO_STOP = 3;
const MAX_PAGES = 20;

const legend = signal('');
const chartNote = signal('');

function chartColors(dark: boolean) {
  return dark
    ? { bg: '#16181d', text: '#b8bcc6', grid: '#22252c', border: '#2c3038', up: '#26a69a', down: '#ef5350', vwap: '#f0a83a' }
    : { bg: '#ffffff', text: '#444a55', grid: '#f0f1f4', border: '#e0e3e8', up: '#26a69a', down: '#ef5350', vwap: '#e08a00' };
}

const toTime = (st: number) => ((st + IST_OFFSET_MS) / 1000) as UTCTimestamp;
const fromTime = (t: number) => t * 1000 - IST_OFFSET_MS;

async function fetchBars(symbol: string, tf: string, from: number, to?: number): Promise<ApiBar[]> {
  const out: ApiBar[] = [];
  let f = from;
  for (let page = 0; page < MAX_PAGES; page++) {
    const q = new URLSearchParams({ symbol, tf, from: String(f) });
    if (to !== undefined) q.set('to', String(to));
    const r = await api<BarsAnswer>(`/api/bars?${q}`);
    out.push(...r.bars);
    if (!r.truncated || r.bars.length === 0) break;
    f = r.bars[r.bars.length - 1].st + 1;
  }
  return out;
}

class ChartController {
  private readonly chart: IChartApi;
  private readonly candles: ISeriesApi<'Candlestick'>;
  private readonly volume: ISeriesApi<'Histogram'>;
  private readonly vwap: ISeriesApi<'Line'>;
  private bars: ApiBar[] = [];
  /** Running Σ vw×v and Σ v of the bar's IST day, up to and including each bar. */
  private cumPV: number[] = [];
  private cumV: number[] = [];
  private token: number | null = null;
  private tf: Timeframe = '1m';
  private gen = 0;
  /** Live bars that came while the history loads; null once it is in. */
  private early: FeedBar[] | null = null;
  private loadingOlder = false;
  private emptyChunks = 0;
  /** Start of the oldest range asked for: the next older chunk ends there. */
  private loadedFrom = 0;
  private readonly disposers: (() => void)[] = [];

  constructor(el: HTMLElement) {
    const c = chartColors(theme.peek() === 'dark');
    this.chart = createChart(el, {
      autoSize: true,
      layout: { background: { type: ColorType.Solid, color: c.bg }, textColor: c.text, fontSize: 11 },
      grid: { vertLines: { color: c.grid }, horzLines: { color: c.grid } },
      rightPriceScale: { borderColor: c.border },
      timeScale: { borderColor: c.border, timeVisible: true, secondsVisible: false, rightOffset: 4 },
      crosshair: { mode: CrosshairMode.Normal },
    });
    this.candles = this.chart.addSeries(CandlestickSeries, {
      upColor: c.up, downColor: c.down, borderVisible: false, wickUpColor: c.up, wickDownColor: c.down,
    });
    this.volume = this.chart.addSeries(HistogramSeries, { priceScaleId: 'vol', priceFormat: { type: 'volume' }, lastValueVisible: false, priceLineVisible: false });
    this.chart.priceScale('vol').applyOptions({ scaleMargins: { top: 0.8, bottom: 0 } });
    this.vwap = this.chart.addSeries(LineSeries, { color: c.vwap, lineWidth: 1, lastValueVisible: false, priceLineVisible: false, crosshairMarkerVisible: false, title: 'VWAP',
      // The candles set the scale: a VWAP far from them (a window that opens on another price) would squash them.
      autoscaleInfoProvider: () => null });
    this.chart.timeScale().subscribeVisibleLogicalRangeChange(this.onRange);
    this.chart.subscribeCrosshairMove(this.onCrosshair);

    hooks.chartState = () => {
      const last = this.bars[this.bars.length - 1];
      return { candles: this.bars.length, lastTime: last ? last.st : null, lastClose: last ? last.c : null, tf: this.tf };
    };
    this.disposers.push(
      onBars((bars) => this.onLive(bars)),
      effect(() => {
        void reconnects.value;
        void this.load(selected.value, chartTf.value);
      }),
      effect(() => { this.applyTheme(theme.value === 'dark'); }),
    );
  }

  dispose(): void {
    for (const d of this.disposers) d();
    this.gen++;
    this.chart.remove();
  }

  private applyTheme(dark: boolean): void {
    const c = chartColors(dark);
    this.chart.applyOptions({
      layout: { background: { type: ColorType.Solid, color: c.bg }, textColor: c.text },
      grid: { vertLines: { color: c.grid }, horzLines: { color: c.grid } },
      rightPriceScale: { borderColor: c.border },
      timeScale: { borderColor: c.border },
    });
    this.candles.applyOptions({ upColor: c.up, downColor: c.down, wickUpColor: c.up, wickDownColor: c.down });
    this.vwap.applyOptions({ color: c.vwap });
    this.redraw();
  }

  private async load(token: number | null, tf: Timeframe): Promise<void> {
    const g = ++this.gen;
    this.token = token;
    this.tf = tf;
    this.bars = [];
    this.early = [];
    this.emptyChunks = 0;
    this.loadingOlder = false;
    this.redraw();
    this.chart.applyOptions({ timeScale: { secondsVisible: tf === '1s', timeVisible: tf !== '1d' } });
    const inst = token === null ? null : byToken.get(token);
    if (!inst) return;
    chartNote.value = 'Loading…';
    const now = Date.now();
    const from = tf === '1d' ? now - 120 * DAY_MS : tf === '1s' ? now - OLDER_CHUNK_MS['1s'] : istDayStart(now);
    this.loadedFrom = from;
    let hist: ApiBar[] = [];
    try {
      hist = await fetchBars(`${inst.exchange}:${inst.symbol}`, tf, from);
    } catch (e) {
      if (g === this.gen) chartNote.value = `History unavailable: ${(e as Error).message}`;
    }
    if (g !== this.gen) return;
    if (chartNote.value === 'Loading…') chartNote.value = '';
    this.bars = hist;
    const early = this.early ?? [];
    this.early = null;
    this.rebuildCum(0);
    for (const b of early) this.upsert(b, false);
    this.redraw();
    this.chart.timeScale().scrollToRealTime();
  }

  private onLive(bars: FeedBar[]): void {
    for (const b of bars) {
      if (b.t !== this.token || b.tf !== this.tf) continue;
      if (this.early) this.early.push(b);
      else this.upsert(b, true);
    }
  }

  /** Put a feed bar in its place: a new last bar, the last bar again, or (rarely) an older one. */
  private upsert(b: FeedBar, draw: boolean): void {
    const bar: ApiBar = { st: b.st, o: b.o, h: b.h, l: b.l, c: b.c, v: b.v, vw: b.vw, n: b.n, oi: b.oi };
    const n = this.bars.length;
    const last = n ? this.bars[n - 1] : null;
    let i: number;
    if (!last || b.st > last.st) {
      this.bars.push(bar);
      i = n;
    } else if (b.st === last.st) {
      this.bars[n - 1] = bar;
      i = n - 1;
    } else {
      i = this.bars.findIndex((x) => x.st === b.st);
      if (i < 0) return; // Older than anything shown and not in the history: nothing to place it beside.
      this.bars[i] = bar;
      this.rebuildCum(i);
      if (draw) this.redraw();
      return;
    }
    this.cumAt(i);
    if (draw) {
      this.candles.update(this.candle(i));
      this.volume.update(this.vol(i));
      this.vwap.update(this.vwapPoint(i));
    }
  }

  private cumAt(i: number): void {
    const b = this.bars[i];
    const sameDay = i > 0 && this.tf !== '1d' && istDayStart(this.bars[i - 1].st) === istDayStart(b.st);
    const pv = b.vw != null && b.v > 0 ? b.vw * b.v : 0;
    const v = b.vw != null ? b.v : 0;
    this.cumPV[i] = (sameDay ? this.cumPV[i - 1] : 0) + pv;
    this.cumV[i] = (sameDay ? this.cumV[i - 1] : 0) + v;
  }

  private rebuildCum(from: number): void {
    this.cumPV.length = this.bars.length;
    this.cumV.length = this.bars.length;
    for (let i = from; i < this.bars.length; i++) this.cumAt(i);
  }

  private candle(i: number) {
    const b = this.bars[i];
    return { time: toTime(b.st), open: b.o, high: b.h, low: b.l, close: b.c };
  }

  private vol(i: number) {
    const b = this.bars[i];
    const c = chartColors(theme.peek() === 'dark');
    return { time: toTime(b.st), value: b.v, color: (b.c >= b.o ? c.up : c.down) + '66' };
  }

  private vwapPoint(i: number) {
    const t = toTime(this.bars[i].st);
    return this.cumV[i] > 0 ? { time: t, value: this.cumPV[i] / this.cumV[i] } : { time: t };
  }

  private redraw(): void {
    const n = this.bars.length;
    const candles = new Array(n);
    const vols = new Array(n);
    const vwaps = new Array(n);
    for (let i = 0; i < n; i++) {
      candles[i] = this.candle(i);
      vols[i] = this.vol(i);
      vwaps[i] = this.vwapPoint(i);
    }
    this.candles.setData(candles);
    this.volume.setData(vols);
    this.vwap.setData(vwaps);
    const last = this.bars[n - 1];
    legend.value = last ? this.legendText(last) : '';
  }

  private readonly onRange = (r: LogicalRange | null) => {
    if (!r || r.from > 10 || this.loadingOlder || this.early || this.emptyChunks >= EMPTY_CHUNKS_TO_STOP || this.bars.length === 0) return;
    void this.loadOlder();
  };

  /**
   * Prepend the chunk before the oldest bar. An empty chunk (a weekend, a holiday, a day the service
   * was down) is passed over to the one before it, up to EMPTY_CHUNKS_TO_STOP in a row.
   */
  private async loadOlder(): Promise<void> {
    const inst = this.token === null ? null : byToken.get(this.token);
    if (!inst) return;
    const g = this.gen;
    this.loadingOlder = true;
    let to = Math.min(this.loadedFrom, this.bars[0].st);
    try {
      while (this.emptyChunks < EMPTY_CHUNKS_TO_STOP) {
        const from = to - OLDER_CHUNK_MS[this.tf];
        const older = await fetchBars(`${inst.exchange}:${inst.symbol}`, this.tf, from, to);
        if (g !== this.gen) return;
        this.loadedFrom = from;
        const first = this.bars[0].st;
        const add = older.filter((b) => b.st < first);
        if (add.length > 0) {
          this.emptyChunks = 0;
          this.bars = [...add, ...this.bars];
          this.rebuildCum(0);
          this.redraw();
          return;
        }
        this.emptyChunks++;
        to = from;
      }
    } catch {
      this.emptyChunks = EMPTY_CHUNKS_TO_STOP;
    } finally {
      if (g === this.gen) this.loadingOlder = false;
    }
  }

  private readonly onCrosshair = (p: MouseEventParams) => {
    if (p.time === undefined) {
      const last = this.bars[this.bars.length - 1];
      legend.value = last ? this.legendText(last) : '';
      return;
    }
    const st = fromTime(p.time as number);
    const b = this.bars.find((x) => x.st === st);
    if (b) legend.value = this.legendText(b);
  };

  private legendText(b: ApiBar): string {
    return `O ${fmtPrice(b.o)}  H ${fmtPrice(b.h)}  L ${fmtPrice(b.l)}  C ${fmtPrice(b.c)}${b.v ? `  V ${fmtQty(b.v)}` : ''}`;
  }
}

export function Chart() {
  const el = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const ctl = new ChartController(el.current!);
    return () => ctl.dispose();
  }, []);
  const inst = selected.value === null ? null : byToken.get(selected.value);
  const name = inst ? displayName(inst) : null;
  return (
    <div class="chart-panel">
      <div class="panel-head">
        <span class="title ellip" title={inst ? `${inst.exchange}:${inst.symbol}` : ''}>{name ? name.main : '—'}{name?.sub && <span class="sym-sub">{name.sub}</span>}</span>
        <div class="tfs" role="group" aria-label="Timeframe">
          {TIMEFRAMES.map((tf) => (
            <button class={chartTf.value === tf ? 'tf on' : 'tf'} data-testid={`tf-${tf}`} aria-pressed={chartTf.value === tf} onClick={() => (chartTf.value = tf)}>
              {tf}
            </button>
          ))}
        </div>
        <span class="spacer" />
        <span class="muted small ellip">{chartNote}</span>
      </div>
      <div class="chart-box" data-testid="chart" data-tf={chartTf.value} ref={el}>
        <div class="legend num">{legend}</div>
      </div>
    </div>
  );
}
