/**
 * What the service knows of an instrument (one row of Kite's instrument master) and the modes
 * Kite streams it in: the types both the main thread and the workers hold. The master's CSV codec
 * and the expiry calendar live in src/kite/.
 */
import { IST_OFFSET_MS } from './ist.ts';

/** Kite's subscription modes: 8-byte ltp, quote, or full packets with depth. */
export type TickMode = 'ltp' | 'quote' | 'full';

export type InstrumentType = 'EQ' | 'FUT' | 'CE' | 'PE';
/** Segments this project writes; a real master has more (BSE, BFO-OPT, MCX-FUT, ...), kept as read. */
export type InstrumentSegment = 'NSE' | 'NFO-FUT' | 'NFO-OPT' | 'INDICES' | (string & {});
export type InstrumentExchange = 'NSE' | 'NFO' | (string & {});

export interface Instrument {
  readonly instrumentToken: number;
  readonly exchangeToken: number;
  readonly tradingsymbol: string;
  readonly name: string;
  /** Rupees. Kite's own master mostly carries 0 here; ours carries a reference level for cash and index rows. */
  readonly lastPrice: number;
  /** 'YYYY-MM-DD', or '' for instruments that do not expire. */
  readonly expiry: string;
  readonly strike: number;
  /** Rupees; 0 for indices. */
  readonly tickSize: number;
  /** Units per lot; 0 for indices. */
  readonly lotSize: number;
  readonly instrumentType: InstrumentType;
  readonly segment: InstrumentSegment;
  readonly exchange: InstrumentExchange;
}

/** The N.INSTR_TYPE code of the canonical tick (src/core/tick.ts), by instrument kind. */
export const InstrumentKind = { INDEX: 0, EQ: 1, FUT: 2, CE: 3, PE: 4 } as const;
export type InstrumentKindCode = (typeof InstrumentKind)[keyof typeof InstrumentKind];

/** The N.INSTR_TYPE code of an instrument: an index by segment or by Kite's token (segment byte 9). */
export function instrumentKindOf(i: Instrument): InstrumentKindCode {
  if (i.segment === 'INDICES' || (i.instrumentToken & 0xff) === 9) return InstrumentKind.INDEX;
  if (i.instrumentType === 'FUT') return InstrumentKind.FUT;
  if (i.instrumentType === 'CE') return InstrumentKind.CE;
  if (i.instrumentType === 'PE') return InstrumentKind.PE;
  return InstrumentKind.EQ;
}

/** N.EXPIRY_MS of an instrument: 00:00 IST of its expiry day, epoch ms; 0 when it does not expire. */
export function expiryMsOf(i: Instrument): number {
  return i.expiry ? Date.parse(`${i.expiry}T00:00:00Z`) - IST_OFFSET_MS : 0;
}
