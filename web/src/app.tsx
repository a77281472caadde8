/**
 * One page, laid out for 1366×768 and up: the watchlist with the selected row's depth on the left,
 * the chart and the trading panels (positions, orders) in the top row, the option chain under them,
 * the health strip along the bottom. Every panel keeps a fixed frame and scrolls inside it, so
 * nothing on the page moves while prices tick.
 *
 * When the feed is not live the prices say so where they are read, not only in the header's badge:
 * the shell carries `data-feed` (live, stale, reconnecting), the stylesheet dims every price under a
 * non-live shell, and a banner hanging from the header says since when no tick has come. The banner
 * is laid over the page, so nothing moves when it comes or goes.
 */
import { useEffect } from 'preact/hooks';
import { useComputed } from '@preact/signals';
import { feedState, keyMode, keyName, lastTickWallMs, quote, signedIn, signOut, theme, apiKey, byToken } from './store.ts';
import { istTime } from './format.ts';
import { SignIn } from './views/signin.tsx';
import { Watchlist } from './views/watchlist.tsx';
import { Depth } from './views/depth.tsx';
import { Chart } from './views/chart.tsx';
import { OptionChain } from './views/chain.tsx';
import { Blotter, Positions } from './views/blotter.tsx';
import { Health } from './views/health.tsx';
import { OrderTicket, installTicketKeys } from './views/ticket.tsx';

export function App() {
  if (!signedIn.value) return <SignIn />;
  return <Terminal />;
}

const STATE_TEXT = { live: 'Live', stale: 'Stale', reconnecting: 'Reconnecting' } as const;

function Header() {
  const index = [...byToken.values()].find((i) => i.segment === 'INDICES');
  const q = index ? quote(index.token) : null;
  const status = useComputed(() => feedState.value);
  const statusText = useComputed(() => STATE_TEXT[feedState.value]);
  const mode = useComputed(() => (keyMode.value === 'unknown' ? '…' : keyMode.value));
  const modeCls = useComputed(() => `badge mode-${keyMode.value}`);
  const idxCls = useComputed(() => `idx-chg ${q?.dir.value ?? ''}`);
  return (
    <header class="top">
      <div class="brand">N50</div>
      {q && (
        <div class="idx">
          <span class="idx-name">{q.inst.symbol}</span>
          <span class="idx-ltp num">{q.ltpText}</span>
          <span class={idxCls}>{q.chgText} ({q.pctText})</span>
        </div>
      )}
      <div class="spacer" />
      <span class="feed" data-testid="feed-status" data-state={status} title="live: ticks arriving · stale: connected, no tick for 3 s · reconnecting: connection lost, retrying">
        <i class="dot" />
        {statusText}
      </span>
      <span class={modeCls} title="Where this key's orders go">
        <span class="muted">{keyName} · </span>
        <span data-testid="key-mode">{mode}</span>
      </span>
      <button class="icon" data-testid="theme" title="Light / dark" onClick={() => (theme.value = theme.value === 'dark' ? 'light' : 'dark')}>
        {theme.value === 'dark' ? '☀' : '☾'}
      </button>
      <button class="link" onClick={signOut} title={apiKey.value ? 'Forget the key in this tab' : ''}>Sign out</button>
    </header>
  );
}

function FeedBanner() {
  const state = feedState.value;
  if (state === 'live') return null;
  const at = lastTickWallMs.value;
  let text: string;
  if (at === null) text = state === 'stale' ? 'Connected, waiting for the first prices…' : 'Connecting to the feed…';
  else if (state === 'stale') text = `No ticks since ${istTime(at)} IST — connected, the feed is quiet`;
  else text = `Prices stale since ${istTime(at)} IST — connection lost, reconnecting…`;
  return <div class="feed-banner" data-testid="feed-banner" data-state={state} role="status">{text}</div>;
}

function Terminal() {
  useEffect(() => installTicketKeys(), []);
  return (
    <div class="shell" data-testid="terminal" data-feed={feedState}>
      <Header />
      <FeedBanner />
      <main class="grid">
        <section class="area-watch">
          <Watchlist />
          <Depth />
        </section>
        <section class="area-chart panel"><Chart /></section>
        <section class="area-trade">
          <Positions />
          <Blotter />
        </section>
        <section class="area-chain panel"><OptionChain /></section>
        <section class="area-health"><Health /></section>
      </main>
      <OrderTicket />
    </div>
  );
}
