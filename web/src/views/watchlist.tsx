/**
 * The watchlist: NIFTY 50 and its stocks, plus whatever the search adds. Each cell is a computed
 * text of its quote's signal, so a tick repaints the cells whose text changed and nothing else; a
 * price change flashes the price cell's background (a class on the cell, never the row; see the
 * store's FLASH_ settings). Sorting reorders the rows once, when a
 * header is clicked, never by itself: rows that jumped around as prices moved could not be clicked.
 */
import { memo } from 'preact/compat';
import { useComputed, useSignal } from '@preact/signals';
import { addToWatch, byToken, instruments, isExtra, quote, removeFromWatch, selected, watch, type Quote } from '../store.ts';
import { displayName } from '../format.ts';
import { openTicket } from './ticket.tsx';

type Col = 'symbol' | 'ltp' | 'chg' | 'pct' | 'vol' | 'high' | 'low';
const COLS: { col: Col; label: string; cls: string }[] = [
  { col: 'symbol', label: 'Instrument', cls: 'c-sym' },
  { col: 'ltp', label: 'LTP', cls: 'c-ltp num' },
  { col: 'chg', label: 'Chg', cls: 'c-chg num' },
  { col: 'pct', label: '%', cls: 'c-pct num' },
  { col: 'vol', label: 'Vol', cls: 'c-vol num' },
  { col: 'high', label: 'High', cls: 'c-hl num' },
  { col: 'low', label: 'Low', cls: 'c-hl num' },
];

export function Watchlist() {
  const sort = useSignal<{ col: Col; desc: boolean } | null>(null);
  const sortBy = (col: Col) => {
    const desc = sort.value?.col === col ? !sort.value.desc : col !== 'symbol';
    sort.value = { col, desc };
    const keyed = watch.value.map((t) => ({ t, k: quote(t)!.field(col) }));
    keyed.sort((a, b) => (a.k < b.k ? -1 : a.k > b.k ? 1 : 0) * (desc ? -1 : 1));
    watch.value = keyed.map((x) => x.t);
  };
  return (
    <div class="panel watch" data-testid="watchlist">
      <Search />
      <div class="scroll">
        <table class="tbl watch-tbl">
          <colgroup>{COLS.map((c) => <col class={c.cls} />)}</colgroup>
          <thead>
            <tr>
              {COLS.map((c) => (
                <th class={c.cls} onClick={() => sortBy(c.col)} data-sort={sort.value?.col === c.col ? (sort.value.desc ? 'desc' : 'asc') : undefined}>
                  {c.label}
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {watch.value.map((t) => <Row key={t} token={t} />)}
          </tbody>
        </table>
      </div>
    </div>
  );
}

const Row = memo(function Row({ token }: { token: number }) {
  const q = quote(token) as Quote;
  const rowCls = useComputed(() => (selected.value === token ? 'sel' : ''));
  const ltpCls = useComputed(() => `c-ltp num ${q.dir.value} ${q.flash.value}`);
  const dirCls = useComputed(() => `num ${q.dir.value}`);
  const i = q.inst;
  const name = displayName(i);
  return (
    <tr class={rowCls} data-testid="watch-row" data-symbol={i.symbol} onClick={() => (selected.value = token)} onDblClick={() => openTicket({ side: 'BUY', token })}>
      <td class="c-sym" title={`${i.exchange}:${i.symbol}${i.name !== i.symbol ? ` · ${i.name}` : ''}`}>
        {name.main}
        {name.sub && <span class="sym-sub">{name.sub}</span>}
        {i.exchange !== 'NSE' && <span class="exch">{i.exchange}</span>}
        {isExtra(token) && (
          <button class="x" title="Remove from the watchlist" onClick={(e) => { e.stopPropagation(); removeFromWatch(token); }}>×</button>
        )}
      </td>
      <td class={ltpCls} data-testid="ltp">{q.ltpText}</td>
      <td class={dirCls}>{q.chgText}</td>
      <td class={dirCls}>{q.pctText}</td>
      <td class="num c-vol">{q.volText}</td>
      <td class="num c-hl">{q.highText}</td>
      <td class="num c-hl">{q.lowText}</td>
    </tr>
  );
});

/** Find any followed instrument (futures, options) by symbol and add it. */
function Search() {
  const text = useSignal('');
  const active = useSignal(0);
  const results = useComputed(() => {
    const s = text.value.trim().toUpperCase().replace(/\s+/g, '');
    if (!s) return [];
    const inWatch = new Set(watch.value);
    return instruments.value
      .filter((i) => !inWatch.has(i.token) && i.symbol.replace(/\s+/g, '').includes(s))
      .slice(0, 12);
  });
  const add = (token: number) => {
    addToWatch(token);
    selected.value = token;
    text.value = '';
  };
  const onKey = (e: KeyboardEvent) => {
    const r = results.value;
    if (e.key === 'ArrowDown') { active.value = Math.min(r.length - 1, active.value + 1); e.preventDefault(); }
    else if (e.key === 'ArrowUp') { active.value = Math.max(0, active.value - 1); e.preventDefault(); }
    else if (e.key === 'Enter' && r.length > 0) { add(r[Math.min(active.value, r.length - 1)].token); e.preventDefault(); }
    else if (e.key === 'Escape') { text.value = ''; (e.target as HTMLInputElement).blur(); }
  };
  return (
    <div class="search">
      <input
        data-testid="watch-search"
        type="search"
        placeholder="Search & add: NIFTY26D08 26000 CE, FUT…"
        value={text.value}
        onInput={(e) => { text.value = (e.target as HTMLInputElement).value; active.value = 0; }}
        onKeyDown={onKey}
      />
      {results.value.length > 0 && (
        <ul class="results" role="listbox">
          {results.value.map((i, n) => (
            <li
              key={i.token}
              role="option"
              aria-selected={n === active.value}
              class={n === active.value ? 'active' : ''}
              data-testid="search-result"
              data-symbol={i.symbol}
              onMouseDown={(e) => { e.preventDefault(); add(i.token); }}
            >
              <span>{i.symbol}</span>
              <span class="muted">{i.segment}{i.expiry ? ` · ${i.expiry}` : ''}</span>
            </li>
          ))}
        </ul>
      )}
      {text.value.trim() !== '' && results.value.length === 0 && (
        <ul class="results"><li class="muted">{byToken.size ? 'No followed instrument matches (or it is already listed)' : 'Loading…'}</li></ul>
      )}
    </div>
  );
}
