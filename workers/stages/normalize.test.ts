import { describe, expect, it } from 'vitest';
import { CollectingSink, decodeFrame, DecodeStats, emptyWireTick, encodeFrame } from '../../src/kite/codec.ts';
import { Kind } from '../../src/core/packet-slot.ts';
import type { Instrument } from '../../src/core/instrument.ts';
import { N, N_FIELDS, NType } from '../../src/core/tick.ts';
import { InstrumentKind, InstrumentTable } from './instrument-table.ts';
import { normalize } from './normalize.ts';

const CE: Instrument = { instrumentToken: 12345602, exchangeToken: 48225, tradingsymbol: 'NIFTY25D0926000CE', name: 'NIFTY', lastPrice: 0, expiry: '2025-12-09', strike: 26000, tickSize: 0.05, lotSize: 75, instrumentType: 'CE', segment: 'NFO-OPT', exchange: 'NFO' };
const CDS: Instrument = { ...CE, instrumentToken: 5000 * 256 + 3, tradingsymbol: 'USDINR25DECFUT', instrumentType: 'FUT', strike: 0, segment: 'CDS-FUT', exchange: 'CDS' };

describe('normalize', () => {
  const table = new InstrumentTable([CE, CDS]);
  function one(token: number, over: object) {
    const t = Object.assign(emptyWireTick(Kind.FULL, token), over);
    const sink = new CollectingSink();
    decodeFrame(encodeFrame([t]), { recvTimeUs: 1.7e15, seq: 9, conn: 2 }, sink, new DecodeStats());
    const out = new Float64Array(N_FIELDS);
    normalize(sink.views, 0, table.row(token), table, 1_700_000_000_000, 25, NType.TICK, 0, out, 0);
    return out;
  }

  it('writes rupees, the change and the instrument attributes', () => {
    const out = one(CE.instrumentToken, { lastPrice: 12_345, close: 10_000, avgPrice: 12_000, volume: 3_000_000_000 });
    expect(out[N.PRICE]).toBe(123.45);
    expect(out[N.CLOSE]).toBe(100);
    expect(out[N.CHANGE_PCT]).toBeCloseTo(23.45, 10);
    expect(out[N.VOLUME]).toBe(3_000_000_000);
    expect(out[N.VOLUME_DELTA]).toBe(25);
    expect(out[N.INSTR_TYPE]).toBe(InstrumentKind.CE);
    expect(out[N.STRIKE]).toBe(26000);
    expect(out[N.EXPIRY_MS]).toBe(Date.parse('2025-12-09T00:00:00+05:30'));
    expect(out[N.SEQ]).toBe(9);
    expect(out[N.CONN]).toBe(2);
    expect(out[N.RECV_TIME_US]).toBe(1.7e15);
    expect(out[N.DEPTH_LEVELS]).toBe(5);
  });

  it('uses the currency divisor for NSE CDS', () => {
    expect(one(CDS.instrumentToken, { lastPrice: 834_567_500 })[N.PRICE]).toBeCloseTo(83.45675, 10);
  });

  it('reports 0 change when there is no previous close', () => {
    expect(one(CE.instrumentToken, { lastPrice: 500, close: 0 })[N.CHANGE_PCT]).toBe(0);
  });
});
