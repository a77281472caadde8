/** One fixed day's simulated instrument master, for tests of the master's codec, calendar and selection. */
import type { Instrument } from '../../src/core/instrument.ts';
import { buildNifty50Universe } from '../../src/kite/sim/universe.ts';

/** Monday 1 December 2025, 10:00 IST. */
export const MON_1_DEC_2025 = new Date('2025-12-01T04:30:00Z');

export function universe(): Instrument[] {
  return buildNifty50Universe({ today: MON_1_DEC_2025, indexLevel: 26000 });
}

export function bySymbol(list: readonly Instrument[], symbol: string): Instrument {
  const t = list.find((x) => x.tradingsymbol === symbol);
  if (t === undefined) throw new Error(`no ${symbol}`);
  return t;
}
