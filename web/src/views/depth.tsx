/**
 * Market depth of the selected row, live: the store follows the selected instrument in `full` mode,
 * whose ticks carry 5 levels a side (`bid`/`ask`: [price, quantity, orders], best first). Each cell
 * is a computed text of the quote's tick, as in the watchlist: a tick repaints the changed cells only.
 */
import { computed, type ReadonlySignal } from '@preact/signals';
import { useMemo } from 'preact/hooks';
import type { TickFull } from '../../../src/client/index.ts';
import { fmtInt, fmtPrice, fmtQty } from '../format.ts';
import { quote, selected, type Quote } from '../store.ts';

const LEVELS = [0, 1, 2, 3, 4];

interface DepthCells {
  q: Quote;
  bid: ReadonlySignal<string>[][];
  ask: ReadonlySignal<string>[][];
  bidBar: ReadonlySignal<string>[];
  askBar: ReadonlySignal<string>[];
  totBid: ReadonlySignal<string>;
  totAsk: ReadonlySignal<string>;
  stats: { label: string; v: ReadonlySignal<string> }[];
}

function cells(q: Quote): DepthCells {
  const full = computed(() => {
    const t = q.tick.value;
    return t && 'bid' in t ? (t as TickFull) : null;
  });
  const maxQty = computed(() => {
    const t = full.value;
    if (!t) return 1;
    let m = 1;
    for (const l of t.bid) m = Math.max(m, l[1]);
    for (const l of t.ask) m = Math.max(m, l[1]);
    return m;
  });
  const side = (s: 'bid' | 'ask') =>
    LEVELS.map((i) => [
      computed(() => { const l = full.value?.[s][i]; return l && l[1] > 0 ? fmtPrice(l[0]) : ''; }),
      computed(() => { const l = full.value?.[s][i]; return l && l[1] > 0 ? fmtInt(l[2]) : ''; }),
      computed(() => { const l = full.value?.[s][i]; return l && l[1] > 0 ? fmtInt(l[1]) : ''; }),
    ]);
  // Quantity bars as a horizontal scale, a style string bound to the bar with no re-render: a
  // transform changes no layout, where a width laid the table out again on every tick.
  const bar = (s: 'bid' | 'ask') => LEVELS.map((i) => computed(() => `transform:scaleX(${((full.value?.[s][i]?.[1] ?? 0) / maxQty.value).toFixed(2)})`));
  const tick = computed(() => {
    const t = q.tick.value;
    return t && 'v' in t ? (t as TickFull) : null;
  });
  return {
    q,
    bid: side('bid'),
    ask: side('ask'),
    bidBar: bar('bid'),
    askBar: bar('ask'),
    totBid: computed(() => fmtInt(tick.value?.bq)),
    totAsk: computed(() => fmtInt(tick.value?.sq)),
    stats: [
      { label: 'Open', v: computed(() => fmtPrice(tick.value?.o)) },
      { label: 'High', v: computed(() => fmtPrice(tick.value?.h)) },
      { label: 'Low', v: computed(() => fmtPrice(tick.value?.l)) },
      { label: 'Prev close', v: computed(() => fmtPrice(tick.value?.c)) },
      { label: 'Volume', v: computed(() => fmtQty(tick.value?.v)) },
      { label: 'Avg price', v: computed(() => fmtPrice(tick.value?.ap || null)) },
      { label: 'LTQ', v: computed(() => fmtInt(tick.value?.q)) },
      { label: 'OI', v: computed(() => (full.value?.oi ? fmtQty(full.value.oi) : '—')) },
    ],
  };
}

export function Depth() {
  const token = selected.value;
  const c = useMemo(() => {
    const q = token === null ? null : quote(token);
    return q ? cells(q) : null;
  }, [token]);
  if (!c) return <div class="panel depth" data-testid="depth"><div class="empty">Select a row</div></div>;
  const isIndex = c.q.inst.segment === 'INDICES';
  return (
    <div class="panel depth" data-testid="depth" data-symbol={c.q.inst.symbol}>
      <div class="panel-head">
        <span class="title">{c.q.inst.symbol}</span>
        <span class="muted">{c.q.inst.exchange} · depth</span>
        <span class="spacer" />
        <span class="num">{c.q.ltpText}</span>
      </div>
      {isIndex ? (
        <div class="empty">An index has no order book.</div>
      ) : (
        <table class="tbl depth-tbl">
          <thead>
            <tr><th class="num">Bid</th><th class="num">Orders</th><th class="num">Qty</th><th class="num">Offer</th><th class="num">Orders</th><th class="num">Qty</th></tr>
          </thead>
          <tbody>
            {LEVELS.map((i) => (
              <tr>
                <td class="num up">{c.bid[i][0]}</td>
                <td class="num">{c.bid[i][1]}</td>
                <td class="num qty-cell"><i class="qbar bid" style={c.bidBar[i]} />{c.bid[i][2]}</td>
                <td class="num down">{c.ask[i][0]}</td>
                <td class="num">{c.ask[i][1]}</td>
                <td class="num qty-cell"><i class="qbar ask" style={c.askBar[i]} />{c.ask[i][2]}</td>
              </tr>
            ))}
            <tr class="total">
              <td>Total</td><td /><td class="num">{c.totBid}</td>
              <td>Total</td><td /><td class="num">{c.totAsk}</td>
            </tr>
          </tbody>
        </table>
      )}
      <dl class="stats">
        {c.stats.map((s) => (
          <div><dt>{s.label}</dt><dd class="num">{s.v}</dd></div>
        ))}
      </dl>
    </div>
  );
}
