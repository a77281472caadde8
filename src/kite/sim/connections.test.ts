/** Connections without sockets: the uWS socket is only stored here, so a stand-in does. */
import { describe, expect, it } from 'vitest';
import type { WebSocket } from 'uWebSockets.js';
import { type Conn, Connections } from './connections.ts';
import { Followers, Subscriptions } from './subscriptions.ts';

const SOCKET = {} as WebSocket<Conn>;
const followers = new Followers(10);
const subs = () => new Subscriptions(10, 3000, followers);

describe('Connections', () => {
  it('holds an api_key to its maximum of open connections, counting from open, and frees a slot on release', () => {
    const cs = new Connections(2);
    const a = cs.create('k', subs(), 0);
    expect(cs.full('k')).toBe(false);
    cs.opened(a, SOCKET, 0);
    const b = cs.create('k', subs(), 0);
    cs.create('k', subs(), 0); // upgraded, never opened: holds no slot
    expect(cs.full('k')).toBe(false);
    cs.opened(b, SOCKET, 0);
    expect(cs.full('k')).toBe(true);
    expect(cs.full('other')).toBe(false);
    expect(cs.release(a)).toBe(true);
    expect(cs.full('k')).toBe(false);
    expect([...cs.open]).toEqual([b]);
  });

  it('numbers connections from 1, never reusing a number', () => {
    const cs = new Connections(3);
    const ids = [cs.create('k', subs(), 0), cs.create('k', subs(), 0)].map((c) => c.id);
    const c = cs.create('k2', subs(), 0);
    cs.opened(c, SOCKET, 0);
    cs.release(c);
    expect([...ids, cs.create('k', subs(), 0).id]).toEqual([1, 2, 4]);
  });

  it('releases a connection once: its socket, its subscriptions, its slot', () => {
    const f = new Followers(10);
    const cs = new Connections(1);
    const c = cs.create('k', new Subscriptions(10, 3000, f), 0);
    cs.opened(c, SOCKET, 5);
    expect(c.lastSendMs).toBe(5);
    c.subs.add(3);
    expect(f.count).toBe(1);
    expect(cs.release(c)).toBe(true);
    expect(c.ws).toBeNull();
    expect(f.count).toBe(0);
    expect(cs.release(c)).toBe(false);
    expect(cs.full('k')).toBe(false);
    expect(cs.open.size).toBe(0);
  });
});
