/**
 * NIFTY's option chain, Sensibull-style: calls on the left, puts on the right, the strike between.
 *
 * `GET /api/option-chain?expiry=` gives the strikes and a first picture; then the `/ws` `chain`
 * subscription sends the expiry's analytics each refresh (every second), one `options[]` entry per
 * token, which updates each leg's signal: the cells are computed texts of it, so a refresh repaints
 * the changed cells only. The frame carries no previous close, so the change is the price less the
 * close implied by the first REST answer (its last price less its change).
 *
 * IV is the mid's when there is one, else the last price's, as a percent; delta is Black-76's, against
 * the forward. The ATM strike (the analytics' `atmStrike`) is highlighted, in-the-money halves shaded.
 * Clicking a price opens the order ticket on that option at that price.
 */
import { batch, computed, signal, useComputed, type ReadonlySignal, type Signal } from '@preact/signals';
import { memo } from 'preact/compat';
import { useEffect, useRef } from 'preact/hooks';
import { api, type ChainFigures, type ChainFrame, type ChainLeg, type OptionChain } from '../api.ts';
import { fmtChange, fmtPrice, fmtQty, fmtQtyChange, istTime, sign } from '../format.ts';
import { followChain, onChain, signedIn } from '../store.ts';
import { openTicket } from './ticket.tsx';

interface LegData { price: number | null; oi: number | null; oiChg: number | null; iv: number | null; delta: number | null }

class Leg {
  readonly data: Signal<LegData>;
  readonly ltp: ReadonlySignal<string>;
  readonly chg: ReadonlySignal<string>;
  readonly chgCls: ReadonlySignal<string>;
  readonly oi: ReadonlySignal<string>;
  readonly oiChg: ReadonlySignal<string>;
  readonly iv: ReadonlySignal<string>;
  readonly delta: ReadonlySignal<string>;
  readonly oiBar: ReadonlySignal<string>;

  constructor(readonly token: number, readonly symbol: string, private readonly prevClose: number | null, first: LegData, maxOi: ReadonlySignal<number>) {
    this.data = signal(first);
    this.ltp = computed(() => fmtPrice(this.data.value.price));
    const change = computed(() => {
      const p = this.data.value.price;
      return p != null && this.prevClose != null ? p - this.prevClose : null;
    });
    this.chg = computed(() => fmtChange(change.value));
    this.chgCls = computed(() => `num ${sign(change.value)}`);
    this.oi = computed(() => fmtQty(this.data.value.oi));
    this.oiChg = computed(() => fmtQtyChange(this.data.value.oiChg));
    this.iv = computed(() => (this.data.value.iv == null ? '—' : (this.data.value.iv * 100).toFixed(1)));
    this.delta = computed(() => {
      const d = this.data.value.delta;
      return d == null ? '—' : (d < 0 ? '−' : '') + Math.abs(d).toFixed(2);
    });
    this.oiBar = computed(() => `width:${Math.round((100 * (this.data.value.oi ?? 0)) / Math.max(1, maxOi.value))}%`);
  }
}

interface Row { strike: number; ce: Leg | null; pe: Leg | null }

const expiries = signal<string[]>([]);
const expiry = signal<string | null>(null);
const rows = signal<Row[]>([]);
const figures = signal<ChainFigures | null>(null);
const spot = signal<number | null>(null);
const note = signal('');
const maxOi = signal(1);
const legs = new Map<number, Leg>();

function legData(l: ChainLeg): LegData {
  const a = l.analytics;
  return { price: l.lastPrice, oi: l.oi, oiChg: a?.oiChangeDay ?? null, iv: a ? (a.ivMid ?? a.ivLast) : null, delta: a?.delta ?? null };
}

let loadGen = 0;
async function load(exp: string | null): Promise<void> {
  const g = ++loadGen;
  note.value = 'Loading…';
  try {
    const q = exp ? `?expiry=${encodeURIComponent(exp)}` : '';
    const c = await api<OptionChain>(`/api/option-chain${q}`);
    if (g !== loadGen) return;
    legs.clear();
    const mk = (l: ChainLeg | null) => {
      if (!l) return null;
      const prev = l.lastPrice != null && l.change != null ? l.lastPrice - l.change : null;
      const leg = new Leg(l.token, l.symbol, prev, legData(l), maxOi);
      legs.set(l.token, leg);
      return leg;
    };
    batch(() => {
      expiries.value = c.expiries;
      expiry.value = c.expiry;
      rows.value = c.strikes.map((s) => ({ strike: s.strike, ce: mk(s.ce), pe: mk(s.pe) }));
      figures.value = c.analytics ?? null;
      spot.value = c.analytics?.spot ?? c.underlying?.price ?? null;
      maxOi.value = Math.max(1, ...c.strikes.flatMap((s) => [s.ce?.oi ?? 0, s.pe?.oi ?? 0]));
      note.value = c.strikes.length ? '' : 'No strikes followed for this expiry';
    });
    followChain(c.expiry);
  } catch (e) {
    if (g === loadGen) note.value = `Option chain unavailable: ${(e as Error).message}`;
  }
}

function onFrame(d: ChainFrame): void {
  if (d.expiry !== expiry.peek()) return;
  batch(() => {
    let m = 1;
    for (const o of d.options) {
      const leg = legs.get(o.token);
      if (leg) leg.data.value = { price: o.price, oi: o.oi, oiChg: o.oiChangeDay, iv: o.ivMid ?? o.ivLast, delta: o.delta };
      if (o.oi != null && o.oi > m) m = o.oi;
    }
    maxOi.value = m;
    figures.value = d;
    spot.value = d.spot;
  });
}

const fig = (f: (x: ChainFigures) => string) => computed(() => (figures.value ? f(figures.value) : '—'));
const HEAD: { label: string; v: ReadonlySignal<string> }[] = [
  { label: 'Spot', v: computed(() => fmtPrice(spot.value)) },
  { label: 'Fwd', v: fig((x) => fmtPrice(x.forward)) },
  { label: 'ATM IV', v: fig((x) => (x.atmIv == null ? '—' : `${(x.atmIv * 100).toFixed(2)}%`)) },
  { label: 'PCR', v: fig((x) => (x.pcrOi == null ? '—' : x.pcrOi.toFixed(2))) },
  { label: 'Max pain', v: fig((x) => (x.maxPain == null ? '—' : fmtPrice(x.maxPain).replace(/\.00$/, ''))) },
  { label: '1σ move', v: fig((x) => (x.expectedMove == null ? '—' : `±${x.expectedMove.toFixed(0)}`)) },
];
const asOf = computed(() => (figures.value?.asOf ? istTime(figures.value.asOf) : ''));
const atm = computed(() => {
  const a = figures.value?.atmStrike;
  if (a != null) return a;
  const s = spot.value;
  if (s == null || rows.value.length === 0) return null;
  return rows.value.reduce((best, r) => (Math.abs(r.strike - s) < Math.abs(best - s) ? r.strike : best), rows.value[0].strike);
});

export function OptionChain() {
  const scroller = useRef<HTMLDivElement>(null);
  useEffect(() => {
    void load(null);
    const off = onChain(onFrame);
    return () => {
      off();
      loadGen++;
    };
  }, []);
  // Bring the money to the middle whenever a new expiry's strikes arrive.
  const list = rows.value;
  useEffect(() => {
    const box = scroller.current;
    const row = box?.querySelector<HTMLElement>('tr.atm');
    if (box && row) {
      // Whole rows above the money, so the first one is not cut under the header.
      const h = row.offsetHeight || 22;
      box.scrollTop = Math.max(0, Math.round((row.offsetTop - box.clientHeight / 2) / h) * h);
    }
  }, [list]);
  if (!signedIn.value) return null;
  return (
    <div class="chain-panel" data-testid="chain">
      <div class="panel-head chain-head">
        <span class="title">NIFTY options</span>
        <select data-testid="expiry" value={expiry.value ?? ''} onChange={(e) => void load((e.target as HTMLSelectElement).value)}>
          {expiries.value.map((x) => <option value={x}>{x}</option>)}
        </select>
        {HEAD.map((h) => (
          <span class="fig"><span class="muted">{h.label}</span> <b class="num">{h.v}</b></span>
        ))}
        <span class="spacer" />
        <span class="muted small num">{note.value || asOf}</span>
      </div>
      <div class="chain-sides"><span>CALLS</span><span>PUTS</span></div>
      <div class="scroll" ref={scroller}>
        <table class="tbl chain-tbl">
          <colgroup>
            <col class="c-oic" /><col class="c-oi" /><col class="c-iv" /><col class="c-dl" /><col class="c-ch" /><col class="c-lp" />
            <col class="c-strike" />
            <col class="c-lp" /><col class="c-ch" /><col class="c-dl" /><col class="c-iv" /><col class="c-oi" /><col class="c-oic" />
          </colgroup>
          <thead>
            <tr>
              <th class="num">OI chg</th><th class="num">OI</th><th class="num">IV %</th><th class="num">Δ</th><th class="num">Chg</th><th class="num">LTP</th>
              <th class="strike">Strike</th>
              <th class="num">LTP</th><th class="num">Chg</th><th class="num">Δ</th><th class="num">IV %</th><th class="num">OI</th><th class="num">OI chg</th>
            </tr>
          </thead>
          <tbody>
            {list.map((r) => <StrikeRow key={r.strike} row={r} />)}
          </tbody>
        </table>
      </div>
    </div>
  );
}

const StrikeRow = memo(function StrikeRow({ row }: { row: Row }) {
  const cls = useComputed(() => {
    const s = spot.value;
    return [
      atm.value === row.strike ? 'atm' : '',
      s != null && row.strike < s ? 'itm-ce' : '',
      s != null && row.strike > s ? 'itm-pe' : '',
    ].join(' ');
  });
  const { ce, pe } = row;
  return (
    <tr class={cls} data-testid="chain-row" data-strike={row.strike}>
      <td class="num ce">{ce?.oiChg}</td>
      <td class="num ce oi-cell">{ce && <i class="oibar ce" style={ce.oiBar} />}{ce?.oi}</td>
      <td class="num ce" data-testid="iv-ce">{ce?.iv}</td>
      <td class="num ce">{ce?.delta}</td>
      <td class={ce ? ce.chgCls : 'num'}>{ce?.chg}</td>
      <td class="num ce price" data-testid="ltp-ce" title={ce ? `Trade ${ce.symbol}` : ''} onClick={() => ce && openTicket({ side: 'BUY', token: ce.token, price: ce.data.peek().price })}>{ce?.ltp}</td>
      <td class="strike">{row.strike}</td>
      <td class="num pe price" data-testid="ltp-pe" title={pe ? `Trade ${pe.symbol}` : ''} onClick={() => pe && openTicket({ side: 'BUY', token: pe.token, price: pe.data.peek().price })}>{pe?.ltp}</td>
      <td class={pe ? pe.chgCls : 'num'}>{pe?.chg}</td>
      <td class="num pe">{pe?.delta}</td>
      <td class="num pe" data-testid="iv-pe">{pe?.iv}</td>
      <td class="num pe oi-cell">{pe && <i class="oibar pe" style={pe.oiBar} />}{pe?.oi}</td>
      <td class="num pe">{pe?.oiChg}</td>
    </tr>
  );
});
