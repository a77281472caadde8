import { describe, expect, it } from 'vitest';
import type { Instrument } from '../core/instrument.ts';
import { Directory, InstrumentIndex } from './directory.ts';
import { FeedHub } from './hub.ts';

function listing(token: number, symbol: string, exchange: string): Instrument {
  return {
    instrumentToken: token, exchangeToken: token >> 8, tradingsymbol: symbol, name: symbol, lastPrice: 0, expiry: '',
    strike: 0, tickSize: 0.05, lotSize: 1, instrumentType: 'EQ', segment: exchange, exchange,
  };
}

const BSE_INFY = listing(128053508, 'INFY', 'BSE');
const NSE_INFY = listing(408065, 'INFY', 'NSE');
const BSE_ONLY = listing(128028676, 'BSEONLY', 'BSE');

describe('instrument index', () => {
  it('resolves a bare symbol listed on several exchanges to its NSE listing, whichever comes first', () => {
    expect(new InstrumentIndex([BSE_INFY, NSE_INFY]).find('INFY')).toBe(1);
    expect(new InstrumentIndex([NSE_INFY, BSE_INFY]).find('INFY')).toBe(0);
  });

  it('resolves EXCHANGE:SYMBOL to that listing, ignoring case and surrounding spaces', () => {
    const index = new InstrumentIndex([NSE_INFY, BSE_INFY, BSE_ONLY]);
    expect(index.find(' bse:infy ')).toBe(1);
    expect(index.find('NSE:INFY')).toBe(0);
    expect(index.find('bseonly')).toBe(2);
    expect(index.find('NSE:BSEONLY')).toBe(-1);
  });

  it('reads a number or digits as a token', () => {
    const index = new InstrumentIndex([NSE_INFY, BSE_INFY]);
    expect(index.find(128053508)).toBe(1);
    expect(index.find('408065')).toBe(0);
    expect(index.find(1)).toBe(-1);
  });

  it('gives the feed hub and the directory the same answer for a followed instrument', () => {
    const hub = new FeedHub([BSE_INFY, NSE_INFY], [60_000]);
    const dir = new Directory(hub, () => [BSE_INFY, NSE_INFY, BSE_ONLY]);
    expect(hub.resolve('infy')).toBe(1);
    expect(dir.resolve('infy')).toBe(NSE_INFY);
    expect(dir.resolve('BSE:BSEONLY')).toBe(BSE_ONLY);
    expect(dir.resolve('NSE:BSEONLY')).toBeNull();
  });
});
