/**
 * The instrument master as typed arrays, built once per thread from the same master rows, so a
 * row index means the same instrument in every shard, the writer and the gateway. Lookups on the
 * hot path are one Map.get(token) → row; everything else is an array read.
 */
import { expiryMsOf, instrumentKindOf, type Instrument } from '../../src/core/instrument.ts';

export { InstrumentKind, type InstrumentKindCode } from '../../src/core/instrument.ts';

export class InstrumentTable {
  readonly size: number;
  readonly rows: readonly Instrument[];
  readonly token: Uint32Array;
  readonly kind: Uint8Array;
  readonly strike: Float64Array;
  /** 00:00 IST of the expiry day, epoch ms; 0 when none. */
  readonly expiryMs: Float64Array;
  private readonly rowOf = new Map<number, number>();

  constructor(rows: readonly Instrument[]) {
    this.rows = rows;
    this.size = rows.length;
    this.token = new Uint32Array(this.size);
    this.kind = new Uint8Array(this.size);
    this.strike = new Float64Array(this.size);
    this.expiryMs = new Float64Array(this.size);
    rows.forEach((r, i) => {
      this.token[i] = r.instrumentToken;
      this.kind[i] = instrumentKindOf(r);
      this.strike[i] = r.strike;
      this.expiryMs[i] = expiryMsOf(r);
      if (!this.rowOf.has(r.instrumentToken)) this.rowOf.set(r.instrumentToken, i);
    });
  }

  /** Row of a token, or -1 when the master does not know it. */
  row(token: number): number {
    const r = this.rowOf.get(token);
    return r === undefined ? -1 : r;
  }

  symbol(row: number): string {
    return this.rows[row].tradingsymbol;
  }
}
