import { describe, expect, it } from 'vitest';
import { Credentials } from './credentials.ts';

describe('Credentials', () => {
  it('accepts any non-empty pair when none is configured', () => {
    const c = new Credentials();
    expect(c.accepts('anything', 'goes')).toBe(true);
    expect(c.accepts('', 'goes')).toBe(false);
    expect(c.accepts('anything', '')).toBe(false);
  });

  it('accepts only the configured value of each part that is configured', () => {
    const both = new Credentials('key', 'tok');
    expect(both.accepts('key', 'tok')).toBe(true);
    expect(both.accepts('key', 'bad')).toBe(false);
    expect(both.accepts('other', 'tok')).toBe(false);
    const keyOnly = new Credentials('key');
    expect(keyOnly.accepts('key', 'any')).toBe(true);
    expect(keyOnly.accepts('other', 'any')).toBe(false);
  });

  it('reads Kite\'s REST header: token api_key:access_token', () => {
    const c = new Credentials('key', 'tok');
    expect(c.acceptsHeader('token key:tok')).toBe(true);
    expect(c.acceptsHeader('token key:bad')).toBe(false);
    expect(c.acceptsHeader('Bearer key:tok')).toBe(false);
    expect(c.acceptsHeader('token key:')).toBe(false);
    expect(c.acceptsHeader('token :tok')).toBe(false);
    expect(c.acceptsHeader('')).toBe(false);
    // The access token is everything after the first colon.
    expect(new Credentials('key', 'a:b').acceptsHeader('token key:a:b')).toBe(true);
  });

  it('names the api_key of an accepted header, which the order book files orders under', () => {
    const open = new Credentials(undefined, 'tok');
    expect(open.keyOf('token alice:tok')).toBe('alice');
    expect(open.keyOf('token bob:tok')).toBe('bob');
    expect(open.keyOf('token alice:bad')).toBeNull();
    expect(open.keyOf('')).toBeNull();
  });
});
