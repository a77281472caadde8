/**
 * Numbers and times as Indian traders read them: prices with two decimals, quantities in lakhs and
 * crores when long (fixed width matters more than the last digit in a ticking column), times in IST.
 * Formatters are built once: `Intl.NumberFormat` is slow to construct and fast to call.
 */

export const IST_OFFSET_MS = 19_800_000;
export const DAY_MS = 86_400_000;

const price2 = new Intl.NumberFormat('en-IN', { minimumFractionDigits: 2, maximumFractionDigits: 2 });
const int = new Intl.NumberFormat('en-IN', { maximumFractionDigits: 0 });

/** 26,021.05; '' when there is no price. */
export function fmtPrice(p: number | null | undefined): string {
  return p == null || !Number.isFinite(p) ? '' : price2.format(p);
}

/** +11.60 / −10.35 (a real minus: same width as the plus in tabular figures). */
export function fmtChange(c: number | null | undefined): string {
  if (c == null || !Number.isFinite(c)) return '';
  return (c > 0 ? '+' : c < 0 ? '−' : '') + price2.format(Math.abs(c));
}

export function fmtPct(c: number | null | undefined): string {
  return c == null || !Number.isFinite(c) ? '' : `${fmtChange(c)}%`;
}

/** Whole numbers with Indian grouping: 12,34,567. */
export function fmtInt(n: number | null | undefined): string {
  return n == null || !Number.isFinite(n) ? '' : int.format(n);
}

/** Compact quantity: 9,876 · 12.35L · 1.23Cr (lakh = 1e5, crore = 1e7). */
export function fmtQty(n: number | null | undefined): string {
  if (n == null || !Number.isFinite(n)) return '';
  const a = Math.abs(n);
  const s = n < 0 ? '−' : '';
  if (a >= 1e7) return `${s}${(a / 1e7).toFixed(2)}Cr`;
  if (a >= 1e5) return `${s}${(a / 1e5).toFixed(2)}L`;
  return s + int.format(a);
}

/** Signed compact quantity for changes (OI change). */
export function fmtQtyChange(n: number | null | undefined): string {
  if (n == null || !Number.isFinite(n)) return '';
  return (n > 0 ? '+' : '') + fmtQty(n);
}

/** Epoch ms → IST 'HH:mm:ss'. */
export function istTime(ms: number): string {
  return new Date(ms + IST_OFFSET_MS).toISOString().slice(11, 19);
}

/** Epoch ms → IST 'YYYY-MM-DD HH:mm'. */
export function istDateTime(ms: number): string {
  return new Date(ms + IST_OFFSET_MS).toISOString().slice(0, 16).replace('T', ' ');
}

/** 00:00 IST of the IST day holding `ms`, epoch ms. */
export function istDayStart(ms: number): number {
  return Math.floor((ms + IST_OFFSET_MS) / DAY_MS) * DAY_MS - IST_OFFSET_MS;
}

export function fmtBytes(n: number): string {
  if (n >= 1 << 30) return `${(n / (1 << 30)).toFixed(1)} GiB`;
  if (n >= 1 << 20) return `${(n / (1 << 20)).toFixed(1)} MiB`;
  if (n >= 1 << 10) return `${(n / (1 << 10)).toFixed(1)} KiB`;
  return `${n} B`;
}

/** -1, 0 or 1, for the up/down colour classes. */
export function sign(n: number | null | undefined): 'up' | 'down' | 'flat' {
  return n == null || n === 0 || !Number.isFinite(n) ? 'flat' : n > 0 ? 'up' : 'down';
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/**
 * How a row names an instrument, the part that tells contracts apart first: options
 * '26000 CE' + '08 Dec', futures 'NIFTY FUT' + 'Dec'; cash and index their trading symbol.
 */
export function displayName(i: { symbol: string; name: string; type: string; strike: number; expiry: string | null }): { main: string; sub: string } {
  const d = i.expiry ? new Date(`${i.expiry}T00:00:00Z`) : null;
  if ((i.type === 'CE' || i.type === 'PE') && d) return { main: `${i.strike} ${i.type}`, sub: `${String(d.getUTCDate()).padStart(2, '0')} ${MONTHS[d.getUTCMonth()]}` };
  if (i.type === 'FUT' && d) return { main: `${i.name} FUT`, sub: MONTHS[d.getUTCMonth()] };
  return { main: i.symbol, sub: '' };
}
