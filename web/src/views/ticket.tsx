/**
 * The order ticket, as on Kite: B or S on the selected watchlist row opens a buy or sell ticket,
 * a price in the option chain opens one on that option at that price, Esc closes it.
 *
 * The form's inputs carry Kite's field names and the body is `POST /api/orders`'s JSON (numbers as
 * JSON numbers, fields that do not apply left out), sent with a fresh `Idempotency-Key` per submit:
 * a retried request answers the first answer and never places twice. A refusal names the field at
 * fault and its message is shown beside that field. A key trading live asks for a second click.
 * From the blotter, the same ticket modifies an open order (`PUT /api/orders/{id}` with the fields
 * that changed).
 */
import { batch, signal, useComputed, useSignal, type Signal } from '@preact/signals';
import { useEffect, useRef } from 'preact/hooks';
import { api, ApiError, randomId, type Instrument, type OrderRow } from '../api.ts';
import { bySymbol, byToken, extraFollows, keyMode, quote, selected, upsertOrder } from '../store.ts';

export type Side = 'BUY' | 'SELL';
interface TicketInit { side: Side; token: number; price?: number | null; order?: OrderRow }

export const ticket = signal<(TicketInit & { n: number }) | null>(null);
/** A line under the header after a submit: what happened to the last order. */
export const toast = signal<{ text: string; kind: 'ok' | 'err' } | null>(null);
/** Show a line in the orders panel's header for a few seconds. */
export function showToast(text: string, kind: 'ok' | 'err'): void {
  const t = { text, kind };
  toast.value = t;
  setTimeout(() => { if (toast.peek() === t) toast.value = null; }, 8000);
}
let opened = 0;

export function openTicket(init: TicketInit): void {
  if (!byToken.has(init.token)) return;
  ticket.value = { ...init, n: ++opened };
  extraFollows.value = [init.token];
}

export function closeTicket(): void {
  ticket.value = null;
  extraFollows.value = [];
}

function editable(t: EventTarget | null): boolean {
  const el = t as HTMLElement | null;
  return !!el && (el.tagName === 'INPUT' || el.tagName === 'TEXTAREA' || el.tagName === 'SELECT' || el.isContentEditable);
}

/** B / S / Esc, as on Kite. Returns the remover. */
export function installTicketKeys(): () => void {
  const onKey = (e: KeyboardEvent) => {
    if (e.key === 'Escape' && ticket.peek()) {
      closeTicket();
      e.preventDefault();
      return;
    }
    if (e.ctrlKey || e.metaKey || e.altKey || editable(e.target)) return;
    const k = e.key.toLowerCase();
    if ((k === 'b' || k === 's') && selected.peek() !== null) {
      openTicket({ side: k === 'b' ? 'BUY' : 'SELL', token: selected.peek()! });
      e.preventDefault();
    }
  };
  document.addEventListener('keydown', onKey);
  return () => document.removeEventListener('keydown', onKey);
}

const PRODUCTS: Record<string, string[]> = { NFO: ['NRML', 'MIS'], BFO: ['NRML', 'MIS'], NSE: ['CNC', 'MIS', 'MTF'], BSE: ['CNC', 'MIS', 'MTF'] };
const ORDER_TYPES = ['MARKET', 'LIMIT', 'SL', 'SL-M'] as const;
const VALIDITIES = ['DAY', 'IOC', 'TTL'] as const;
const VARIETIES = ['regular', 'amo', 'iceberg'] as const;
/** Fields the form shows; a refusal naming another field is shown at the foot of the ticket. */
const FORM_FIELDS = new Set(['exchange', 'tradingsymbol', 'transaction_type', 'quantity', 'product', 'order_type', 'price', 'trigger_price', 'validity', 'validity_ttl', 'variety', 'market_protection', 'iceberg_legs', 'iceberg_quantity']);

function roundToTick(p: number, tick: number): number {
  if (!tick) return Math.round(p * 100) / 100;
  return Math.round(Math.round(p / tick) * tick * 100) / 100;
}

interface Form {
  side: Signal<Side>;
  exchange: Signal<string>;
  tradingsymbol: Signal<string>;
  variety: Signal<(typeof VARIETIES)[number]>;
  product: Signal<string>;
  order_type: Signal<(typeof ORDER_TYPES)[number]>;
  quantity: Signal<string>;
  price: Signal<string>;
  trigger_price: Signal<string>;
  validity: Signal<(typeof VALIDITIES)[number]>;
  validity_ttl: Signal<string>;
  market_protection: Signal<string>;
  iceberg_legs: Signal<string>;
  iceberg_quantity: Signal<string>;
}

function initialForm(t: TicketInit, inst: Instrument): Form {
  const o = t.order;
  const ltp = quote(inst.token)?.tick.peek()?.p ?? null;
  const price = o ? o.price : t.price ?? ltp;
  return {
    side: signal(o ? o.transaction_type : t.side),
    exchange: signal(inst.exchange),
    tradingsymbol: signal(inst.symbol),
    variety: signal((o?.variety as Form['variety']['value']) ?? 'regular'),
    product: signal(o?.product ?? (PRODUCTS[inst.exchange] ?? ['CNC'])[0]),
    order_type: signal(o ? o.order_type : 'LIMIT'),
    quantity: signal(String(o ? o.quantity : Math.max(1, inst.lotSize))),
    price: signal(price != null && price > 0 ? roundToTick(price, inst.tickSize).toFixed(2) : ''),
    trigger_price: signal(o && o.trigger_price ? String(o.trigger_price) : ''),
    validity: signal((o?.validity as Form['validity']['value']) ?? 'DAY'),
    validity_ttl: signal('1'),
    market_protection: signal(String(o?.market_protection ?? -1)),
    iceberg_legs: signal('2'),
    iceberg_quantity: signal(''),
  };
}

/** The JSON body: numbers as numbers, fields that do not apply to the order type left out. */
function placeBody(f: Form): Record<string, unknown> {
  const ot = f.order_type.value;
  const b: Record<string, unknown> = {
    variety: f.variety.value,
    exchange: f.exchange.value,
    tradingsymbol: f.tradingsymbol.value.trim().toUpperCase(),
    transaction_type: f.side.value,
    quantity: num(f.quantity.value),
    product: f.product.value,
    order_type: ot,
    validity: f.validity.value,
  };
  if (ot === 'LIMIT' || ot === 'SL') b.price = num(f.price.value);
  if (ot === 'SL' || ot === 'SL-M') b.trigger_price = num(f.trigger_price.value);
  if (ot === 'MARKET' || ot === 'SL-M') b.market_protection = num(f.market_protection.value);
  if (f.validity.value === 'TTL') b.validity_ttl = num(f.validity_ttl.value);
  if (f.variety.value === 'iceberg') {
    b.iceberg_legs = num(f.iceberg_legs.value);
    if (f.iceberg_quantity.value.trim()) b.iceberg_quantity = num(f.iceberg_quantity.value);
  }
  return b;
}

/** A modification: only what differs from the order as it stands. */
function modifyBody(f: Form, o: OrderRow): Record<string, unknown> {
  const b: Record<string, unknown> = {};
  const ot = f.order_type.value;
  if (ot !== o.order_type) b.order_type = ot;
  const q = num(f.quantity.value);
  if (q !== o.quantity) b.quantity = q;
  if (ot === 'LIMIT' || ot === 'SL') {
    const p = num(f.price.value);
    if (p !== o.price) b.price = p;
  }
  if (ot === 'SL' || ot === 'SL-M') {
    const t = num(f.trigger_price.value);
    if (t !== o.trigger_price) b.trigger_price = t;
  }
  if (f.validity.value !== o.validity) b.validity = f.validity.value;
  if ((ot === 'MARKET' || ot === 'SL-M') && (ot !== o.order_type || num(f.market_protection.value) !== o.market_protection)) b.market_protection = num(f.market_protection.value);
  return b;
}

/** Text → JSON number; what is not a number goes as the text, so the server names the field. */
function num(s: string): number | string {
  const t = s.trim();
  const n = Number(t);
  return t !== '' && Number.isFinite(n) ? n : t;
}

export function OrderTicket() {
  const t = ticket.value;
  if (!t) return null;
  return <TicketForm key={t.n} init={t} />;
}

function TicketForm({ init }: { init: TicketInit }) {
  const inst0 = byToken.get(init.token)!;
  const formRef = useRef<Form | null>(null);
  formRef.current ??= initialForm(init, inst0);
  const f = formRef.current;
  const errors = useSignal<Record<string, string>>({});
  const general = useSignal<string | null>(null);
  const busy = useSignal(false);
  const confirming = useSignal(false);
  const firstInput = useRef<HTMLInputElement>(null);
  const modify = init.order ?? null;
  const inst = useComputed(() => bySymbol.get(f.tradingsymbol.value.trim().toUpperCase()) ?? inst0);
  const q = useComputed(() => quote(inst.value.token));

  useEffect(() => {
    firstInput.current?.focus();
    firstInput.current?.select();
  }, []);

  const touch = () => {
    confirming.value = false;
  };
  const setF = (s: Signal<string>) => (e: Event) => {
    s.value = (e.target as HTMLInputElement).value;
    touch();
  };

  const submit = async (e?: Event) => {
    e?.preventDefault();
    if (busy.value) return;
    if (keyMode.value === 'live' && !confirming.value) {
      confirming.value = true;
      return;
    }
    busy.value = true;
    batch(() => {
      errors.value = {};
      general.value = null;
    });
    try {
      let row: OrderRow;
      if (modify) {
        const body = modifyBody(f, modify);
        if (Object.keys(body).length === 0) {
          general.value = 'Nothing changed.';
          return;
        }
        row = await api<OrderRow>(`/api/orders/${modify.order_id}`, { method: 'PUT', body });
      } else {
        row = await api<OrderRow>('/api/orders', { method: 'POST', body: placeBody(f), headers: { 'Idempotency-Key': randomId() } });
      }
      const { events: _events, ...plain } = row as OrderRow & { events?: unknown };
      upsertOrder(plain as OrderRow, 'rest');
      showToast(`${modify ? 'Modified' : 'Placed'} ${row.transaction_type} ${row.quantity} ${row.tradingsymbol} · #${row.order_id} ${row.status}`, 'ok');
      closeTicket();
    } catch (err) {
      const ae = err instanceof ApiError ? err : null;
      const msg = (err as Error).message;
      if (ae?.field) errors.value = { [ae.field]: msg };
      else general.value = ae?.status === 429 && ae.retryAfter ? `${msg} (retry in ${ae.retryAfter} s)` : msg;
      confirming.value = false;
    } finally {
      busy.value = false;
    }
  };

  const err = (field: string) =>
    errors.value[field] ? <div class="field-error" data-testid={`error-${field}`} role="alert">{errors.value[field]}</div> : null;
  const stray = Object.entries(errors.value).filter(([k]) => !FORM_FIELDS.has(k));
  const side = f.side.value;
  const ot = f.order_type.value;
  const products = PRODUCTS[f.exchange.value] ?? ['CNC', 'MIS', 'NRML'];
  const radio = <T extends string>(name: string, s: Signal<T>, values: readonly T[], disabled = false, label: (v: T) => string = (v) => v) => (
    <div class="radios" role="radiogroup">
      {values.map((v) => (
        <label class={s.value === v ? 'on' : ''}>
          <input type="radio" name={name} value={v} checked={s.value === v} disabled={disabled} onChange={() => { s.value = v; touch(); }} />
          {label(v)}
        </label>
      ))}
    </div>
  );

  return (
    <div class={`ticket ${side === 'BUY' ? 'buy' : 'sell'}`} data-testid="ticket" data-side={side} role="dialog" aria-label="Order ticket">
      <form noValidate onSubmit={submit} onKeyDown={(e) => { if (e.key === 'Escape') closeTicket(); }}>
        <div class="ticket-head">
          <div>
            <div class="ticket-title">
              {modify ? `Modify #${modify.order_id}` : side === 'BUY' ? 'Buy' : 'Sell'} {inst.value.symbol}
              <span class="exch">{inst.value.exchange}</span>
            </div>
            <div class="ticket-sub num">
              LTP {q.value?.ltpText ?? ''} <span class={q.value ? `${q.value.dir}` : ''}>{q.value?.pctText ?? ''}</span>
              {inst.value.lotSize > 1 && <span> · lot {inst.value.lotSize}</span>}
              {inst.value.tickSize > 0 && <span> · tick {inst.value.tickSize}</span>}
            </div>
          </div>
          <div class="sides">
            <button type="button" data-testid="side-buy" class={side === 'BUY' ? 'on' : ''} disabled={!!modify} onClick={() => { f.side.value = 'BUY'; touch(); }}>B</button>
            <button type="button" data-testid="side-sell" class={side === 'SELL' ? 'on' : ''} disabled={!!modify} onClick={() => { f.side.value = 'SELL'; touch(); }}>S</button>
          </div>
        </div>
        <input type="hidden" name="transaction_type" value={side} />

        <div class="ticket-body">
          <div class="row">{radio('variety', f.variety, VARIETIES, !!modify)}{err('variety')}</div>
          <div class="row two">
            <label class="fld">
              <span>Exchange</span>
              <select name="exchange" value={f.exchange.value} disabled={!!modify} onChange={setF(f.exchange)}>
                {['NSE', 'NFO', 'BSE', 'BFO'].map((x) => <option value={x}>{x}</option>)}
              </select>
              {err('exchange')}
            </label>
            <label class="fld">
              <span>Symbol</span>
              <input name="tradingsymbol" value={f.tradingsymbol.value} disabled={!!modify} onInput={(e) => {
                f.tradingsymbol.value = (e.target as HTMLInputElement).value;
                const i = bySymbol.get(f.tradingsymbol.value.trim().toUpperCase());
                if (i) f.exchange.value = i.exchange;
                touch();
              }} />
              {err('tradingsymbol')}
            </label>
          </div>
          <div class="row three">
            <label class="fld">
              <span>Qty{inst.value.lotSize > 1 ? ` (lot ${inst.value.lotSize})` : ''}</span>
              <input ref={firstInput} name="quantity" type="number" inputMode="numeric" min={1} step={Math.max(1, inst.value.lotSize)} value={f.quantity.value} onInput={setF(f.quantity)} />
              {err('quantity')}
            </label>
            <label class="fld">
              <span>Price</span>
              <input name="price" type="number" inputMode="decimal" step={inst.value.tickSize || 0.05} min={0} value={f.price.value} disabled={ot === 'MARKET' || ot === 'SL-M'} placeholder={ot === 'MARKET' || ot === 'SL-M' ? 'Market' : ''} onInput={setF(f.price)} />
              {err('price')}
            </label>
            <label class="fld">
              <span>Trigger</span>
              <input name="trigger_price" type="number" inputMode="decimal" step={inst.value.tickSize || 0.05} min={0} value={f.trigger_price.value} disabled={ot === 'MARKET' || ot === 'LIMIT'} onInput={setF(f.trigger_price)} />
              {err('trigger_price')}
            </label>
          </div>
          <div class="row">
            {radio('product', f.product, products, !!modify)}
            {radio('order_type', f.order_type, ORDER_TYPES)}
          </div>
          {err('product')}
          {err('order_type')}
          <div class="row">
            {radio('validity', f.validity, VALIDITIES)}
            {(ot === 'MARKET' || ot === 'SL-M') && (
              <label class="fld inline" title="Market protection: -1 automatic, 0 none, 1-100 percent">
                <span>Protection</span>
                <input name="market_protection" type="number" min={-1} max={100} value={f.market_protection.value} onInput={setF(f.market_protection)} />
              </label>
            )}
            {f.validity.value === 'TTL' && (
              <label class="fld inline">
                <span>Minutes</span>
                <input name="validity_ttl" type="number" min={1} max={1440} value={f.validity_ttl.value} onInput={setF(f.validity_ttl)} />
              </label>
            )}
          </div>
          {err('validity')}
          {err('market_protection')}
          {err('validity_ttl')}
          {f.variety.value === 'iceberg' && !modify && (
            <div class="row two">
              <label class="fld"><span>Legs</span><input name="iceberg_legs" type="number" min={2} max={50} value={f.iceberg_legs.value} onInput={setF(f.iceberg_legs)} />{err('iceberg_legs')}</label>
              <label class="fld"><span>Leg qty</span><input name="iceberg_quantity" type="number" min={1} value={f.iceberg_quantity.value} onInput={setF(f.iceberg_quantity)} />{err('iceberg_quantity')}</label>
            </div>
          )}
          {stray.map(([k, v]) => <div class="field-error" data-testid={`error-${k}`} role="alert">{k}: {v}</div>)}
          {general.value && <div class="field-error" data-testid="ticket-error" role="alert">{general.value}</div>}
          {confirming.value && (
            <div class="confirm" data-testid="live-confirm" role="alert">
              LIVE: this order goes to Kite with real money. Click again to confirm.
            </div>
          )}
        </div>
        <div class="ticket-foot">
          <span class="muted small">{keyMode.value === 'live' ? 'Live key' : 'Paper'} · Esc closes</span>
          <span class="spacer" />
          <button type="submit" class="primary place" data-testid="place" disabled={busy.value}>
            {busy.value ? 'Sending…' : confirming.value ? 'Confirm live order' : modify ? 'Modify' : side === 'BUY' ? 'Buy' : 'Sell'}
          </button>
          <button type="button" class="ghost" onClick={closeTicket}>Cancel</button>
        </div>
      </form>
    </div>
  );
}
