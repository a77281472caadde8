/**
 * The order-update bus between gateways over the real Redis (database 9, a unique prefix per
 * test): an update reaches the key's sockets on every gateway once, its own gateway's at once and
 * never again from the echo, in the order it was made.
 */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { until } from '../../test/support/until.ts';
import { OrderUpdateBus, type UpdatePush } from './update-bus.ts';

const URL = 'redis://127.0.0.1:6379/9';
const opened: Redis[] = [];
const buses: OrderUpdateBus[] = [];

afterEach(async () => {
  await Promise.all(buses.splice(0).map((b) => b.close()));
  await Promise.all(opened.splice(0).map((r) => r.quit()));
});

function redis(): Redis {
  const r = new Redis(URL);
  opened.push(r);
  return r;
}

/** A gateway's local sockets: what each key received. */
function sockets() {
  const got: { kind: 'order' | 'positions'; key: string; data: unknown }[] = [];
  const push: UpdatePush = {
    order: (key, row) => got.push({ kind: 'order', key, data: row }),
    positions: (key, rows) => got.push({ kind: 'positions', key, data: rows }),
  };
  return { got, push };
}

async function gateway(prefix: string) {
  const local = sockets();
  const bus = new OrderUpdateBus({ pub: redis(), sub: redis(), prefix, local: local.push });
  buses.push(bus);
  await bus.start();
  return { bus, got: local.got };
}

describe('OrderUpdateBus', () => {
  it('delivers an order update to the key\'s sockets on both gateways, once each, in order', async () => {
    const prefix = `test:bus:${randomBytes(4).toString('hex')}:`;
    const [a, b] = [await gateway(prefix), await gateway(prefix)];
    const rows = ['PUT ORDER REQ RECEIVED', 'VALIDATION PENDING', 'OPEN PENDING', 'OPEN', 'COMPLETE'].map((status) => ({ order_id: '260101000000007', status }));
    for (const r of rows) a.bus.push.order('alice', r);
    // The publishing gateway's own sockets got them at once, without Redis.
    expect(a.got.map((g) => (g.data as { status: string }).status)).toEqual(rows.map((r) => r.status));
    await until('the other gateway to get all five', () => b.got.length === 5);
    expect(b.got).toEqual(rows.map((r) => ({ kind: 'order', key: 'alice', data: r })));
    // A marker sent after the echoes: once it is in, every echo has been heard and dropped.
    b.bus.push.order('marker', { order_id: 'm' });
    await until('the marker back at the first gateway', () => a.got.some((g) => g.key === 'marker'));
    expect(a.got.filter((g) => g.key === 'alice')).toHaveLength(5);
    expect(a.bus.stats).toMatchObject({ published: 5, echoes: 5, delivered: 1, errors: 0 });
  });

  it('carries position pushes too, and nothing to gateways of another prefix', async () => {
    const prefix = `test:bus:${randomBytes(4).toString('hex')}:`;
    const [a, b] = [await gateway(prefix), await gateway(prefix)];
    const other = await gateway(`test:bus:${randomBytes(4).toString('hex')}:`);
    const net = [{ tradingsymbol: 'INFY', quantity: 10, pnl: 12.5 }];
    a.bus.push.positions('bob', net);
    // Then, from the same connection, a marker on the other prefix's channel: Redis delivers in
    // publication order, so had ours reached the other prefix it would be there before the marker.
    await opened[0].publish(other.bus.channel, JSON.stringify({ o: 'marker', t: 'order', k: 'zed', r: { order_id: 'z' } }));
    await until('the marker at the other prefix', () => other.got.length > 0);
    expect(other.got).toEqual([{ kind: 'order', key: 'zed', data: { order_id: 'z' } }]);
    await until('the positions at the other gateway', () => b.got.length === 1);
    expect(b.got).toEqual([{ kind: 'positions', key: 'bob', data: net }]);
  });
});
