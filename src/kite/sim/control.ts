/**
 * Kite's control messages on the ticker socket, applied to one connection's subscriptions:
 *
 *   {"a":"subscribe","v":[token, ...]}      new tokens start in quote mode
 *   {"a":"unsubscribe","v":[token, ...]}
 *   {"a":"mode","v":["ltp"|"quote"|"full", [token, ...]]}
 *
 * Tokens may be numbers or digit strings. Unknown tokens are ignored silently, as Kite does; other
 * entries of a token list are skipped. Tokens past the connection's limit are refused with one
 * error for the message; a malformed message gets an error naming the expected shape.
 */
import { modeCode } from './market.ts';
import type { Subscriptions } from './subscriptions.ts';

/** Token to row (`Market.indexOf`): -1 when unknown. */
export interface Rows {
  indexOf(token: number): number;
}

/**
 * Applies one text message to `subs`. Returns the text of the error to send back
 * (`{"type":"error","data":...}`), or null when there is none.
 */
export function applyControl(text: string, subs: Subscriptions, rows: Rows): string | null {
  let msg: unknown;
  try {
    msg = JSON.parse(text);
  } catch {
    return 'Invalid message: not JSON. Send {"a":"subscribe","v":[token, ...]}.';
  }
  const m = msg as { a?: unknown; v?: unknown } | null;
  if (m === null || typeof m !== 'object') return 'Invalid message: expected a JSON object with "a" and "v".';
  if (m.a === 'subscribe' || m.a === 'unsubscribe') {
    const tokens = tokensOf(m.v);
    if (tokens === null) return `Invalid ${m.a}: "v" must be an array of instrument tokens.`;
    return m.a === 'subscribe' ? subscribe(subs, rows, tokens) : unsubscribe(subs, rows, tokens);
  }
  if (m.a === 'mode') {
    const v = m.v;
    const code = Array.isArray(v) && v.length === 2 && typeof v[0] === 'string' ? modeCode(v[0]) : 0;
    const tokens = code === 0 ? null : tokensOf((v as unknown[])[1]);
    if (tokens === null) return 'Invalid mode: "v" must be ["ltp"|"quote"|"full", [token, ...]].';
    for (const token of tokens) {
      const i = rows.indexOf(token);
      if (i >= 0) subs.setMode(i, code);
    }
    return null;
  }
  return `Invalid message: unknown action ${JSON.stringify(m.a) ?? 'undefined'}.`;
}

function subscribe(subs: Subscriptions, rows: Rows, tokens: readonly number[]): string | null {
  let excess = 0;
  for (const token of tokens) {
    const i = rows.indexOf(token);
    if (i < 0) continue; // Kite ignores unknown tokens silently
    if (!subs.add(i)) excess++;
  }
  if (excess === 0) return null;
  return `Subscription limit exceeded: a connection can follow at most ${subs.limit} instruments; ${excess} not subscribed.`;
}

function unsubscribe(subs: Subscriptions, rows: Rows, tokens: readonly number[]): null {
  for (const token of tokens) {
    const i = rows.indexOf(token);
    if (i >= 0) subs.remove(i);
  }
  return null;
}

/** The tokens of a list (numbers, or digit strings); null when it is not a list. */
function tokensOf(v: unknown): number[] | null {
  if (!Array.isArray(v)) return null;
  const out: number[] = [];
  for (const x of v) {
    if (typeof x === 'number' && Number.isInteger(x) && x >= 0) out.push(x);
    else if (typeof x === 'string' && /^\d+$/.test(x)) out.push(Number(x));
  }
  return out;
}
