/**
 * The dashboard's entry.
 *
 * Why Preact with signals: the bundle stays small (Preact is ~4 KB gzipped; the chart library is
 * most of what we ship), and a signal bound straight into JSX text (`<td>{quote.ltpText}</td>`)
 * updates that one text node when it changes, without re-rendering the component or diffing the
 * list around it. A watchlist of 51 rows ticking many times a second therefore costs a few text
 * writes per animation frame, not 51 row renders per tick (store.ts batches the ticks per frame).
 */
import { render } from 'preact';
import { App } from './app.tsx';
import { apiKey, signIn } from './store.ts';
import './styles.css';

// A key kept from earlier in this tab's session signs in by itself; a refused one shows the form.
if (apiKey.peek()) void signIn(apiKey.peek()!);

render(<App />, document.getElementById('app')!);
