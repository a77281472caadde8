/**
 * The state between the feed and the views.
 *
 * Ticks: each instrument has one `Quote` holding a signal of its latest tick; cells bind formatted
 * `computed`s of it straight into JSX text, so a tick changes a few text nodes and re-renders no
 * component and no list. Frames from `/ws` are not applied as they come (a busy feed sends hundreds
 * a second, more than a screen shows): ticks and bars are buffered, the latest per instrument (per
 * instrument, timeframe and bucket for bars) replacing the one before, and applied together once per
 * animation frame inside one signals `batch`. A hidden tab gets no animation frames, so there the
 * buffer is applied on a timer instead; it never grows past one entry per instrument.
 *
 * What is followed is derived, not commanded: the watchlist, the positions and the ticket want
 * `quote` ticks, the selected row `full` ticks (for its depth) and the chart's bars; `syncFollows`
 * turns that into the few subscribe/unsubscribe messages that move the feed from what it follows to
 * what is wanted. The feed client re-sends it all after a reconnect.
 */
import { batch, computed, effect, signal, type ReadonlySignal, type Signal } from '@preact/signals';
import { FeedClient, type FeedBar, type FeedMode, type FeedTick, type TickFull } from '../../src/client/index.ts';
import { api, setApiKey, type ChainFrame, type Instrument, type OrderRow, type PositionRow } from './api.ts';
import { fmtChange, fmtPct, fmtPrice, fmtQty, sign } from './format.ts';

export type FeedState = 'live' | 'stale' | 'reconnecting';
export type Timeframe = '1s' | '1m' | '5m' | '15m' | '1d';
export const TIMEFRAMES: Timeframe[] = ['1s', '1m', '5m', '15m', '1d'];
/** No tick for this long while connected: the feed is stale. */
const STALE_MS = 3000;
/**
 * A price change colours its cell for FLASH_HOLD_MS, then the colour fades (a CSS transition as the
 * class goes). A cell flashes at most once per FLASH_EVERY_MS: on a busy feed a price changes every
 * frame, and restarting the flash each time showed only a constant tint while it restyled every
 * cell every frame.
 */
const FLASH_HOLD_MS = 200;
const FLASH_EVERY_MS = 600;

// ---------------------------------------------------------------- session

const KEY_STORE = 'n50.key';
export const apiKey = signal<string | null>(sessionStorage.getItem(KEY_STORE));
/** The key's trading mode from the welcome frame; 'unknown' until it comes or when a server omits it. */
export const keyMode = signal<'paper' | 'live' | 'unknown'>('unknown');
export const keyName = signal<string>('');
export const signedIn = signal(false);

// ---------------------------------------------------------------- instruments and quotes

export const instruments = signal<Instrument[]>([]);
export const byToken = new Map<number, Instrument>();
export const bySymbol = new Map<string, Instrument>();

/** One instrument's live state. Cells read the computed texts; only those whose text changed repaint. */
export class Quote {
  readonly tick: Signal<FeedTick | null> = signal(null);
  /** The price cell's flash class: 'fl-up' or 'fl-dn' while it holds, '' otherwise. */
  readonly flash: Signal<'' | 'fl-up' | 'fl-dn'> = signal('');
  readonly ltp: ReadonlySignal<number | null>;
  readonly ltpText: ReadonlySignal<string>;
  readonly chgText: ReadonlySignal<string>;
  readonly pctText: ReadonlySignal<string>;
  readonly dir: ReadonlySignal<string>;
  readonly volText: ReadonlySignal<string>;
  readonly highText: ReadonlySignal<string>;
  readonly lowText: ReadonlySignal<string>;
  /** When the last flash began (performance.now()), -Infinity before the first. */
  flashAt = -Infinity;

  constructor(readonly inst: Instrument) {
    this.ltp = computed(() => this.tick.value?.p ?? null);
    this.ltpText = computed(() => fmtPrice(this.ltp.value));
    const q = () => {
      const t = this.tick.value;
      return t && 'c' in t ? t : null;
    };
    this.chgText = computed(() => {
      const t = q();
      return t && t.c ? fmtChange(t.p - t.c) : '';
    });
    this.pctText = computed(() => {
      const t = q();
      return t && t.c ? fmtPct(t.ch) : '';
    });
    this.dir = computed(() => {
      const t = q();
      return t && t.c ? sign(t.p - t.c) : 'flat';
    });
    // An index trades no volume: blank, not a column of zeros.
    this.volText = computed(() => (inst.segment === 'INDICES' ? '' : fmtQty(q()?.v)));
    this.highText = computed(() => fmtPrice(q()?.h));
    this.lowText = computed(() => fmtPrice(q()?.l));
  }

  /** Take a tick at `now` (performance.now()); true when it began a flash, to be ended by `endFlash`. */
  apply(t: FeedTick, now: number): boolean {
    const prev = this.tick.peek();
    this.tick.value = t;
    if (!prev || t.p === prev.p || now - this.flashAt < FLASH_EVERY_MS) return false;
    this.flashAt = now;
    this.flash.value = t.p > prev.p ? 'fl-up' : 'fl-dn';
    return true;
  }

  /** End the flash once it has held; true when it is over. */
  endFlash(now: number): boolean {
    if (now - this.flashAt < FLASH_HOLD_MS) return false;
    this.flash.value = '';
    return true;
  }

  /** A sort key read once, when a column header is clicked. */
  field(f: 'symbol' | 'ltp' | 'chg' | 'pct' | 'vol' | 'high' | 'low'): number | string {
    const t = this.tick.peek() as Partial<TickFull> | null;
    switch (f) {
      case 'symbol': return this.inst.symbol;
      case 'ltp': return t?.p ?? -Infinity;
      case 'chg': return t?.p != null && t.c ? t.p - t.c : -Infinity;
      case 'pct': return t?.ch ?? -Infinity;
      case 'vol': return t?.v ?? -Infinity;
      case 'high': return t?.h ?? -Infinity;
      case 'low': return t?.l ?? -Infinity;
    }
  }
}

const quotes = new Map<number, Quote>();
export function quote(token: number): Quote | null {
  let q = quotes.get(token);
  if (!q) {
    const inst = byToken.get(token);
    if (!inst) return null;
    quotes.set(token, (q = new Quote(inst)));
  }
  return q;
}

// ---------------------------------------------------------------- watchlist, selection, chart

const WATCH_EXTRA = 'n50.watch.extra';
/** Tokens in the watchlist, in display order. */
export const watch = signal<number[]>([]);
export const selected = signal<number | null>(null);
export const chartTf = signal<Timeframe>((localStorage.getItem('n50.tf') as Timeframe | null) ?? '1m');
effect(() => localStorage.setItem('n50.tf', chartTf.value));

function defaultWatch(list: Instrument[]): number[] {
  const index = list.filter((i) => i.segment === 'INDICES');
  const stocks = list.filter((i) => i.segment === 'NSE' && i.type === 'EQ').sort((a, b) => a.symbol.localeCompare(b.symbol));
  let extra: string[] = [];
  try {
    extra = JSON.parse(localStorage.getItem(WATCH_EXTRA) ?? '[]');
  } catch { /* a hand-edited value: start without the extras */ }
  const added = extra.map((s) => bySymbol.get(s)).filter((i): i is Instrument => !!i);
  return [...index, ...stocks, ...added].map((i) => i.token);
}

/** Add a followed instrument (a future, an option) to the watchlist; remembered in this browser. */
export function addToWatch(token: number): void {
  if (watch.value.includes(token)) return;
  watch.value = [...watch.value, token];
  saveExtras();
}

export function removeFromWatch(token: number): void {
  watch.value = watch.value.filter((t) => t !== token);
  if (selected.value === token) selected.value = watch.value[0] ?? null;
  saveExtras();
}

export function isExtra(token: number): boolean {
  const i = byToken.get(token);
  return !!i && i.segment !== 'INDICES' && i.segment !== 'NSE';
}

function saveExtras(): void {
  localStorage.setItem(WATCH_EXTRA, JSON.stringify(watch.value.filter(isExtra).map((t) => byToken.get(t)!.symbol)));
}

// ---------------------------------------------------------------- feed

export const feedState = signal<FeedState>('reconnecting');
/** When the last tick came (epoch ms), kept up to date while the feed is not live; null before any tick. */
export const lastTickWallMs = signal<number | null>(null);
/** Counts reconnections, for views that must read again what they missed (the chart's bars). */
export const reconnects = signal(0);
/** Service receive → applied here, ms, from the `rt` of full ticks (same clock when on one machine). */
export const feedLatencyMs = signal<number | null>(null);
let feed: FeedClient | null = null;
let lastTickAt = 0;
/** performance.now() of the last tick received (lastTickAt also restarts on a new connection). */
let lastPriceAt = 0;
let stateTimer: ReturnType<typeof setInterval> | null = null;
let stopSync: (() => void) | null = null;

export interface TestHooks {
  chartState(): { candles: number; lastTime: number | null; lastClose: number | null; tf: string };
  firstPriceAt: number | null;
}
export const hooks: TestHooks = {
  chartState: () => ({ candles: 0, lastTime: null, lastClose: null, tf: chartTf.peek() }),
  firstPriceAt: null,
};
(window as unknown as { __n50: TestHooks }).__n50 = hooks;

const pendingTicks = new Map<number, FeedTick>();
const pendingBars = new Map<string, FeedBar>();
/** Quotes whose price cell is flashing; `flush` ends each flash after its hold. */
const flashing = new Set<Quote>();
let flushQueued = false;
const barListeners = new Set<(bars: FeedBar[]) => void>();

/** Called once per animation frame with the bars that changed in it, in arrival order. */
export function onBars(fn: (bars: FeedBar[]) => void): () => void {
  barListeners.add(fn);
  return () => barListeners.delete(fn);
}

function queueFlush(): void {
  if (flushQueued) return;
  flushQueued = true;
  if (document.hidden) setTimeout(flush, 250);
  else requestAnimationFrame(flush);
}

function flush(): void {
  flushQueued = false;
  const now = performance.now();
  if (flashing.size > 0) {
    batch(() => {
      for (const q of flashing) if (q.endFlash(now)) flashing.delete(q);
    });
  }
  if (pendingTicks.size > 0) {
    let latency = -1;
    batch(() => {
      for (const t of pendingTicks.values()) {
        const q = quote(t.t);
        if (q?.apply(t, now)) flashing.add(q);
        if ('rt' in t && t.rt > 0) latency = Date.now() - t.rt / 1000;
      }
    });
    pendingTicks.clear();
    if (latency >= 0) feedLatencyMs.value = latency;
    if (hooks.firstPriceAt === null) hooks.firstPriceAt = performance.now();
  }
  if (pendingBars.size > 0) {
    const bars = [...pendingBars.values()];
    pendingBars.clear();
    for (const fn of barListeners) fn(bars);
  }
  // A quiet feed sends no frame to end the flashes with: ask for one.
  if (flashing.size > 0) queueFlush();
}

function takeTicks(ticks: FeedTick[]): void {
  for (const t of ticks) pendingTicks.set(t.t, t);
  lastTickAt = lastPriceAt = performance.now();
  queueFlush();
}

function takeBars(bars: FeedBar[]): void {
  for (const b of bars) {
    const k = `${b.t}|${b.tf}|${b.st}`;
    // Delete first so a bucket updated again moves behind the ones that came after it.
    pendingBars.delete(k);
    pendingBars.set(k, b);
  }
  queueFlush();
}

function updateFeedState(): void {
  const state: FeedState = !feed?.connected ? 'reconnecting' : performance.now() - lastTickAt > STALE_MS ? 'stale' : 'live';
  batch(() => {
    // Only off the live path: while ticks flow nothing reads it, and it would change every call.
    if (state !== 'live') lastTickWallMs.value = lastPriceAt > 0 ? Math.round(performance.timeOrigin + lastPriceAt) : null;
    feedState.value = state;
  });
}

// ---------------------------------------------------------------- what the feed follows

/** Tokens wanted besides the watchlist: positions and the ticket's instrument. */
export const extraFollows = signal<number[]>([]);
const followed = new Map<number, { mode: FeedMode; bars: string }>();

function syncFollows(): void {
  if (!feed) return;
  const want = new Map<number, { mode: FeedMode; bars: string }>();
  for (const t of watch.value) want.set(t, { mode: 'quote', bars: '' });
  for (const t of extraFollows.value) want.set(t, { mode: 'quote', bars: '' });
  for (const p of positions.value) want.set(p.instrument_token, { mode: 'quote', bars: '' });
  const sel = selected.value;
  if (sel !== null) want.set(sel, { mode: 'full', bars: chartTf.value });

  const gone: number[] = [];
  const barsGone = new Map<string, number[]>();
  const subs = new Map<string, number[]>();
  for (const [t, f] of followed) {
    const w = want.get(t);
    if (!w) gone.push(t);
    else if (f.bars && f.bars !== w.bars) (barsGone.get(f.bars) ?? barsGone.set(f.bars, []).get(f.bars)!).push(t);
  }
  for (const [t, w] of want) {
    const f = followed.get(t);
    if (f && f.mode === w.mode && f.bars === w.bars) continue;
    const k = `${w.mode}|${w.bars}`;
    (subs.get(k) ?? subs.set(k, []).get(k)!).push(t);
  }
  const quiet = () => {};
  if (gone.length) feed.unsubscribe(gone).catch(quiet);
  for (const [tf, ts] of barsGone) feed.unsubscribe(ts, { bars: [tf] }).catch(quiet);
  for (const [k, ts] of subs) {
    const [mode, tf] = k.split('|') as [FeedMode, string];
    feed.subscribe(ts, { mode, bars: tf ? [tf] : [] }).catch(quiet);
  }
  followed.clear();
  for (const [t, w] of want) followed.set(t, w);
}

// ---------------------------------------------------------------- option chain (analytics frames)

const chainListeners = new Set<(d: ChainFrame) => void>();
export function onChain(fn: (d: ChainFrame) => void): () => void {
  chainListeners.add(fn);
  return () => chainListeners.delete(fn);
}
let chainFollowed: string | null = null;
/** Receive one expiry's chain analytics (NIFTY's), and no other. */
export function followChain(expiry: string | null): void {
  if (!feed || expiry === chainFollowed) return;
  if (chainFollowed) feed.unsubscribeAnalytics({ chain: [chainFollowed] }).catch(() => {});
  chainFollowed = expiry;
  if (expiry) feed.subscribeAnalytics({ chain: [expiry] }).catch(() => {});
}

// ---------------------------------------------------------------- orders and positions

export const orders = signal<OrderRow[]>([]);
export const positions = signal<PositionRow[]>([]);
let ordersLoaded = false;
const earlyOrders: OrderRow[] = [];

function newestFirst(a: OrderRow, b: OrderRow): number {
  // Order ids are time-ordered digit strings; longer is later, then lexical.
  return b.order_id.length - a.order_id.length || (b.order_id < a.order_id ? -1 : b.order_id > a.order_id ? 1 : 0);
}

const FINAL = new Set(['COMPLETE', 'CANCELLED', 'REJECTED']);

/**
 * Put an order row in the blotter. `order` frames come in the order things happened and always
 * apply; a REST answer (place, modify, cancel) can arrive after frames that are newer than it, so it
 * only adds an order not seen yet, and nothing moves a finished order back.
 */
export function upsertOrder(row: OrderRow, from: 'feed' | 'rest'): void {
  const old = orders.value.find((o) => o.order_id === row.order_id);
  if (old && (from === 'rest' || (FINAL.has(old.status) && !FINAL.has(row.status)))) return;
  const list = orders.value.filter((o) => o.order_id !== row.order_id);
  list.push(row);
  list.sort(newestFirst);
  orders.value = list;
}

async function loadOrders(): Promise<void> {
  ordersLoaded = false;
  const [o, p] = await Promise.all([
    api<{ orders: OrderRow[] }>('/api/orders'),
    api<{ net: PositionRow[] }>('/api/positions'),
  ]);
  orders.value = o.orders.slice().sort(newestFirst);
  ordersLoaded = true;
  for (const r of earlyOrders.splice(0)) upsertOrder(r, 'feed');
  positions.value = p.net;
}

// ---------------------------------------------------------------- sign-in

export const signInError = signal<string | null>(null);
export const signingIn = signal(false);

/** Check the key against the service (GET /api/instruments), then start the feed. */
export async function signIn(key: string): Promise<boolean> {
  signingIn.value = true;
  signInError.value = null;
  try {
    const r = await api<{ instruments: Instrument[] }>('/api/instruments', { key });
    apiKey.value = key;
    setApiKey(key);
    sessionStorage.setItem(KEY_STORE, key);
    byToken.clear();
    bySymbol.clear();
    for (const i of r.instruments) {
      byToken.set(i.token, i);
      bySymbol.set(i.symbol, i);
    }
    batch(() => {
      instruments.value = r.instruments;
      watch.value = defaultWatch(r.instruments);
      selected.value = selected.peek() ?? watch.value[0] ?? null;
      signedIn.value = true;
    });
    startFeed(key);
    loadOrders().catch((e) => console.warn('orders', e));
    return true;
  } catch (e) {
    signInError.value = (e as Error).message;
    return false;
  } finally {
    signingIn.value = false;
  }
}

export function signOut(): void {
  sessionStorage.removeItem(KEY_STORE);
  feed?.close();
  feed = null;
  if (stateTimer) clearInterval(stateTimer);
  stopSync?.();
  stopSync = null;
  followed.clear();
  chainFollowed = null;
  batch(() => {
    apiKey.value = null;
    signedIn.value = false;
    keyMode.value = 'unknown';
    feedState.value = 'reconnecting';
    orders.value = [];
    positions.value = [];
  });
}

function startFeed(key: string): void {
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  const client = new FeedClient({ url: `${scheme}://${location.host}/ws`, key });
  feed = client;
  client.on('welcome', (w) => {
    keyName.value = w.key;
    keyMode.value = w.mode === 'paper' || w.mode === 'live' ? w.mode : 'unknown';
  });
  let opens = 0;
  client.on('open', () => {
    lastTickAt = performance.now();
    updateFeedState();
    // Back after a drop: order and position changes and closed bars of the gap came as no frame.
    if (opens++ > 0) {
      reconnects.value++;
      loadOrders().catch((e) => console.warn('orders', e));
    }
  });
  client.on('close', () => updateFeedState());
  client.on('ticks', (t) => takeTicks(t));
  client.on('snapshot', (s) => {
    if (s.ticks.length) takeTicks(s.ticks);
    if (s.bars.length) takeBars(s.bars);
  });
  client.on('bars', (b) => takeBars(b));
  client.on('chain', (d) => { for (const fn of chainListeners) fn(d as unknown as ChainFrame); });
  client.on('order', (row) => {
    if (ordersLoaded) upsertOrder(row as unknown as OrderRow, 'feed');
    else earlyOrders.push(row as unknown as OrderRow);
  });
  client.on('position', (rows) => { positions.value = rows as unknown as PositionRow[]; });
  client.on('error', (e) => console.warn('feed:', e.message));
  stateTimer = setInterval(updateFeedState, 250);
  // Follow what the views want now and whenever it changes.
  stopSync = effect(() => syncFollows());
  client.connect().catch(() => { /* the client retries by itself; the status shows 'reconnecting' */ });
}

// ---------------------------------------------------------------- theme

export const theme = signal<'light' | 'dark'>(document.documentElement.dataset.theme === 'dark' ? 'dark' : 'light');
effect(() => {
  document.documentElement.dataset.theme = theme.value;
  localStorage.setItem('n50.theme', theme.value);
});
