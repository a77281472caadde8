/**
 * What the service knows of an instrument (one row of Kite's instrument master) and the modes
 * Kite streams it in: the types both the main thread and the workers hold. The master's CSV codec
 * and the expiry calendar live in src/kite/.
 */

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
