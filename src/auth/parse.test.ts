import { describe, expect, it } from 'vitest';
import { keyFromQuery, parseBearer, parseKiteAuth } from './parse.ts';

describe('parseBearer', () => {
  it('takes the key from "Bearer <key>", any case of the scheme, surrounding blanks ignored', () => {
    expect(parseBearer('Bearer n50_a_xyz')).toBe('n50_a_xyz');
    expect(parseBearer('bearer n50_a_xyz')).toBe('n50_a_xyz');
    expect(parseBearer('  BEARER\tn50_a_xyz  ')).toBe('n50_a_xyz');
  });

  it('gives null for a missing header, another scheme, no key, or two tokens', () => {
    expect(parseBearer(undefined)).toBeNull();
    expect(parseBearer(null)).toBeNull();
    expect(parseBearer('')).toBeNull();
    expect(parseBearer('Bearer')).toBeNull();
    expect(parseBearer('Bearer ')).toBeNull();
    expect(parseBearer('Basic dXNlcjpwYXNz')).toBeNull();
    expect(parseBearer('token k:t')).toBeNull();
    expect(parseBearer('Bearer a b')).toBeNull();
    expect(parseBearer('Bearerxyz')).toBeNull();
  });
});

describe('parseKiteAuth', () => {
  it("reads KiteConnect's 'token api_key:access_token'", () => {
    expect(parseKiteAuth('token abc123:n50_bot_xyz')).toEqual({ apiKey: 'abc123', accessToken: 'n50_bot_xyz' });
    expect(parseKiteAuth('Token abc123:tok:with:colons')).toEqual({ apiKey: 'abc123', accessToken: 'tok:with:colons' });
  });

  it('gives null for other forms', () => {
    expect(parseKiteAuth(undefined)).toBeNull();
    expect(parseKiteAuth('token abc123')).toBeNull();
    expect(parseKiteAuth('token :tok')).toBeNull();
    expect(parseKiteAuth('token abc:')).toBeNull();
    expect(parseKiteAuth('Bearer abc:tok')).toBeNull();
  });
});

describe('keyFromQuery', () => {
  it('finds the parameter with or without the leading "?", percent-decoded, first of repeats', () => {
    expect(keyFromQuery('key=n50_a_xyz')).toBe('n50_a_xyz');
    expect(keyFromQuery('?mode=full&key=n50_a_xyz')).toBe('n50_a_xyz');
    expect(keyFromQuery('key=a%2Db&key=second')).toBe('a-b');
    expect(keyFromQuery('api_key=k&access_token=t', 'access_token')).toBe('t');
  });

  it('gives null when absent or empty', () => {
    expect(keyFromQuery(undefined)).toBeNull();
    expect(keyFromQuery('')).toBeNull();
    expect(keyFromQuery('mode=full')).toBeNull();
    expect(keyFromQuery('key=')).toBeNull();
    expect(keyFromQuery('keys=abc')).toBeNull();
  });
});
