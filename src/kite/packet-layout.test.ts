import { describe, expect, it } from 'vitest';
import { DEPTH_ENTRIES, DEPTH_SIDE, DepthEntry, Frame, Full, HEARTBEAT_BYTES, Index, Ltp, PacketLength, Quote } from './packet-layout.ts';
import { DEPTH_LEVELS, KIND_LENGTH, Kind } from '../core/packet-slot.ts';

/** Fields as [offset, size], sorted, must cover [0, length) with no gap and no overlap. */
function expectTiles(fields: Array<[number, number]>, length: number): void {
  const sorted = [...fields].sort((a, b) => a[0] - b[0]);
  let end = 0;
  for (const [off, size] of sorted) {
    expect(off).toBe(end);
    end = off + size;
  }
  expect(end).toBe(length);
}

const words = (o: Record<string, number>): Array<[number, number]> => Object.values(o).map((off) => [off, 4]);

describe('Kite packet layout', () => {
  it('gives every kind the length Kite sends and the slot layout expects', () => {
    expect(PacketLength).toEqual({ LTP: 8, INDEX_QUOTE: 28, INDEX_FULL: 32, QUOTE: 44, FULL: 184 });
    expect([PacketLength.LTP, PacketLength.INDEX_QUOTE, PacketLength.INDEX_FULL, PacketLength.QUOTE, PacketLength.FULL])
      .toEqual([Kind.LTP, Kind.INDEX_QUOTE, Kind.INDEX_FULL, Kind.QUOTE, Kind.FULL].map((k) => KIND_LENGTH[k]));
  });

  it('lays the fields of each kind end to end, filling the packet exactly', () => {
    expectTiles(words(Ltp), PacketLength.LTP);
    const { EXCHANGE_TIME: indexTime, ...indexQuote } = Index;
    expectTiles(words(indexQuote), PacketLength.INDEX_QUOTE);
    expect(indexTime).toBe(PacketLength.INDEX_QUOTE);
    expectTiles(words(Index), PacketLength.INDEX_FULL);
    expectTiles(words(Quote), PacketLength.QUOTE);
    const { DEPTH, ...fullWords } = Full;
    expectTiles([...words(fullWords), [DEPTH, DEPTH_ENTRIES * DepthEntry.BYTES]], PacketLength.FULL);
  });

  it('keeps each shorter packet the head of the longer one of its family', () => {
    expect(Index).toMatchObject(Ltp);
    expect(Quote).toMatchObject(Ltp);
    expect(Full).toMatchObject(Quote);
  });

  it('lays a depth entry as u32 quantity, i32 price, u16 orders, u16 padding', () => {
    const { BYTES, ...fields } = DepthEntry;
    expectTiles([[fields.QUANTITY, 4], [fields.PRICE, 4], [fields.ORDERS, 2], [fields.PAD, 2]], BYTES);
    expect(DEPTH_ENTRIES).toBe(2 * DEPTH_SIDE);
    expect(DEPTH_SIDE).toBe(DEPTH_LEVELS);
  });

  it('opens a frame with a u16 count and prefixes each packet with a u16 length', () => {
    expect(Frame).toEqual({ COUNT: 0, HEADER_BYTES: 2, LENGTH_BYTES: 2 });
    expect(HEARTBEAT_BYTES).toBe(1);
  });
});
