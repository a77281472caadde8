/**
 * Orders and positions of this key. Orders: `GET /api/orders` once, then each `order` frame from
 * `/ws` replaces its row (every status change of every order is one frame); open orders can be
 * modified (in the ticket) or cancelled here. Positions: `GET /api/positions` once, then `position`
 * frames; the P&L is recomputed from the live price of each instrument (the store follows it),
 * as Kite computes it: sell value − buy value + quantity × price × multiplier.
 */
import { computed, useComputed } from '@preact/signals';
import { memo } from 'preact/compat';
import { api, WORKING, type OrderRow, type PositionRow } from '../api.ts';
import { displayName, fmtChange, fmtInt, fmtPrice, sign } from '../format.ts';
import { byToken, orders, positions, quote, upsertOrder } from '../store.ts';
import { openTicket, showToast, toast } from './ticket.tsx';

const STATUS_CLASS: Record<string, string> = { COMPLETE: 'st-ok', REJECTED: 'st-bad', CANCELLED: 'st-off' };

async function cancel(o: OrderRow): Promise<void> {
  try {
    const row = await api<OrderRow & { events?: unknown }>(`/api/orders/${o.order_id}`, { method: 'DELETE' });
    const { events: _e, ...plain } = row;
    upsertOrder(plain as OrderRow, 'rest');
  } catch (e) {
    showToast(`Cancel #${o.order_id}: ${(e as Error).message}`, 'err');
  }
}

export function Blotter() {
  const list = orders.value;
  const open = list.filter((o) => WORKING.has(o.status)).length;
  return (
    <div class="panel blotter" data-testid="blotter">
      <div class="panel-head">
        <span class="title">Orders</span>
        <span class="muted">{list.length} · {open} open</span>
        <span class="spacer" />
        <Toast />
      </div>
      <div class="scroll">
        <table class="tbl orders-tbl">
          <colgroup><col class="c-side" /><col class="c-osym" /><col class="c-qty" /><col class="c-px" /><col class="c-st" /><col class="c-act" /></colgroup>
          <thead>
            <tr><th /><th>Instrument</th><th class="num">Filled</th><th class="num">Price</th><th>Status</th><th /></tr>
          </thead>
          <tbody>
            {list.map((o) => <OrderLine key={o.order_id} o={o} />)}
            {list.length === 0 && <tr class="empty-row"><td colSpan={6}>No orders yet. B / S on a watchlist row opens a ticket.</td></tr>}
          </tbody>
        </table>
      </div>
    </div>
  );
}

const OrderLine = memo(function OrderLine({ o }: { o: OrderRow }) {
  const working = WORKING.has(o.status);
  const px = o.average_price > 0 ? o.average_price : o.price > 0 ? o.price : null;
  const pxText = px != null ? fmtPrice(px) : o.trigger_price > 0 ? `trg ${fmtPrice(o.trigger_price)}` : 'MKT';
  const inst = byToken.get(o.instrument_token);
  const name = inst ? displayName(inst) : { main: o.tradingsymbol, sub: '' };
  return (
    <tr data-testid="order-row" data-order-id={o.order_id} data-status={o.status} title={`#${o.order_id} · ${o.order_timestamp}${o.status_message ? ` · ${o.status_message}` : ''}`}>
      <td><span class={`side ${o.transaction_type === 'BUY' ? 'buy' : 'sell'}`}>{o.transaction_type}</span></td>
      <td class="ellip">{name.main}{name.sub && <span class="sym-sub">{name.sub}</span>} <span class="muted small">{o.product} · {o.order_type}</span></td>
      <td class="num">{fmtInt(o.filled_quantity)}/{fmtInt(o.quantity)}</td>
      <td class="num">{pxText}</td>
      <td><span class={`status ${STATUS_CLASS[o.status] ?? 'st-open'}`}>{o.status}</span></td>
      <td class="acts">
        {working && (
          <>
            <button class="mini" data-testid="order-modify" title="Modify" onClick={() => openTicket({ side: o.transaction_type, token: o.instrument_token, order: o })}>✎</button>
            <button class="mini" data-testid="order-cancel" title="Cancel" onClick={() => void cancel(o)}>✕</button>
          </>
        )}
      </td>
    </tr>
  );
});

function Toast() {
  const t = toast.value;
  if (!t) return null;
  return <span class={`toast ${t.kind}`} data-testid="toast" onClick={() => (toast.value = null)}>{t.text}</span>;
}

/** Kite's P&L: what was sold less what was bought plus the open quantity at the live price. */
function livePnl(p: PositionRow): number {
  const ltp = quote(p.instrument_token)?.ltp.value ?? p.last_price;
  return p.sell_value - p.buy_value + p.quantity * ltp * (p.multiplier || 1);
}

export function Positions() {
  const list = positions.value;
  const total = useComputed(() => positions.value.reduce((s, p) => s + livePnl(p), 0));
  const totalCls = useComputed(() => `num pnl ${sign(total.value)}`);
  const totalText = useComputed(() => fmtChange(total.value));
  return (
    <div class="panel positions" data-testid="positions">
      <div class="panel-head">
        <span class="title">Positions</span>
        <span class="muted">{list.length}</span>
        <span class="spacer" />
        <span class="muted">P&amp;L</span>
        <b class={totalCls} data-testid="pnl-total">{totalText}</b>
      </div>
      <div class="scroll">
        <table class="tbl pos-tbl">
          <colgroup><col class="c-psym" /><col class="c-qty" /><col class="c-px" /><col class="c-px" /><col class="c-pnl" /></colgroup>
          <thead>
            <tr><th>Instrument</th><th class="num">Qty</th><th class="num">Avg</th><th class="num">LTP</th><th class="num">P&amp;L</th></tr>
          </thead>
          <tbody>
            {list.map((p) => <PositionLine key={`${p.tradingsymbol}|${p.product}`} p={p} />)}
            {list.length === 0 && <tr class="empty-row"><td colSpan={5}>No positions.</td></tr>}
          </tbody>
        </table>
      </div>
    </div>
  );
}

const PositionLine = memo(function PositionLine({ p }: { p: PositionRow }) {
  const q = quote(p.instrument_token);
  const inst = byToken.get(p.instrument_token);
  const name = inst ? displayName(inst) : { main: p.tradingsymbol, sub: '' };
  const pnl = computed(() => livePnl(p));
  const ltpText = q ? q.ltpText : computed(() => fmtPrice(p.last_price));
  const pnlText = computed(() => fmtChange(pnl.value));
  const pnlCls = computed(() => `num pnl ${sign(pnl.value)}`);
  return (
    <tr data-testid="position-row" data-symbol={p.tradingsymbol} class={p.quantity === 0 ? 'closed' : ''}>
      <td class="ellip" title={`${p.exchange}:${p.tradingsymbol}`}>{name.main}{name.sub && <span class="sym-sub">{name.sub}</span>} <span class="muted small">{p.product}</span></td>
      <td class={`num ${sign(p.quantity)}`}>{fmtInt(p.quantity)}</td>
      <td class="num">{fmtPrice(p.average_price)}</td>
      <td class="num">{ltpText}</td>
      <td class={pnlCls} data-testid="pnl">{pnlText}</td>
    </tr>
  );
});
