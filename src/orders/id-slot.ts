/**
 * A slot of the order and trade id space for this gateway, leased in Redis: several gateways write
 * orders to one database, each making its own ids (model.ts IdSource), and two of them must never
 * make the same id. Without slots they do: ids are microsecond times counted up in a burst, so two
 * gateways taking orders in the same instant give the same ids, and the second order's row
 * overwrites the first's (orders are upserted by order_id).
 *
 * The lease: key `P{orders}:ids:slot:<n>` (P = REDIS_PREFIX) set NX with this process's owner
 * string and a TTL (ttlMs, default 30 s), renewed every third of it by a script that extends it
 * only while it is still ours. A renewal that finds the slot gone (Redis lost it, or was away
 * longer than the TTL and another gateway took it) takes another free slot at once; ids stay
 * unique because a slot's new holder counts from its own clock, far past the ids made under it
 * before (the TTL at least). Slots are tried from a random one on, so gateways starting together
 * rarely contend. All `slots` taken: acquire() fails, saying so.
 *
 * A gateway cut off from Redis past the TTL keeps its slot number while it cannot renew; it takes
 * no order meanwhile (the shared rate limit refuses without Redis), but fills of its working paper
 * orders still make trade ids there, which a gateway that took the slot could repeat: the store
 * refuses such a trade (DUPLICATE_TRADE) rather than overwrite one.
 *
 * Which gateway works a working paper order (adopt()): the one that placed it, told by the slot
 * in its id, as long as that slot's lease is alive; every gateway loads every order from the
 * database, and each working one put to work in two processes would fill twice. An order whose
 * placing gateway is gone (its slot key expired) is adopted by the first gateway to start after
 * that, claimed with `P{orders}:work:<order id>` = `<claimant's slot key>\n<claimant's owner>`:
 * a claim whose claimant's slot lease is gone too is taken over by the next.
 */
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import type { Redis } from 'ioredis';
import { AppError } from '../core/errors.ts';
import type { Logger } from '../log.ts';
import { LuaScript } from './lua.ts';

export interface IdSlotOptions {
  redis: Redis;
  /** REDIS_PREFIX. */
  prefix: string;
  /** How many slots the id space is cut into: more gateways than this cannot run; default 1000. */
  slots?: number;
  ttlMs?: number;
  log?: Pick<Logger, 'warn' | 'error'>;
}

/** Extend the lease while it is ours: 1 kept, 0 lost. */
const RENEW = new LuaScript('the order id slot lease', `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
`);

const RELEASE = new LuaScript('the order id slot lease', `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`);

/**
 * Claim a working order for this gateway: 1 when it is ours to work. KEYS[1] the slot key of the
 * gateway that placed it, KEYS[2] its claim; ARGV[1] our slot key, ARGV[2] our owner, ARGV[3] the
 * claim's TTL. A live placing gateway works it itself; a live claimant keeps it.
 */
const ADOPT = new LuaScript('the working-order claim', `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local c = redis.call('GET', KEYS[2])
if c then
  local sk, ow = string.match(c, '^(.*)\\n(.*)$')
  if sk and redis.call('GET', sk) == ow then
    if ow == ARGV[2] then return 1 end
    return 0
  end
end
redis.call('SET', KEYS[2], ARGV[1] .. '\\n' .. ARGV[2], 'PX', ARGV[3])
return 1
`);

/** How long a claim on an adopted order lasts: past any order's life (orders end with the day). */
const CLAIM_TTL_MS = 3 * 86_400_000;

export class IdSlotLease {
  /** The slot ids are made in now; read by IdSource at every id. */
  slot = -1;
  readonly slots: number;
  private readonly owner = `${os.hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
  private readonly ttlMs: number;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;

  private constructor(private readonly opts: IdSlotOptions) {
    this.slots = opts.slots ?? 1000;
    this.ttlMs = opts.ttlMs ?? 30_000;
  }

  /** A leased slot, kept until close(). */
  static async acquire(opts: IdSlotOptions): Promise<IdSlotLease> {
    const lease = new IdSlotLease(opts);
    await lease.take();
    lease.timer = setInterval(() => void lease.renew(), Math.max(10, Math.floor(lease.ttlMs / 3)));
    lease.timer.unref();
    return lease;
  }

  private key(n: number): string {
    return `${this.opts.prefix}{orders}:ids:slot:${n}`;
  }

  private async take(): Promise<void> {
    const start = Math.floor(Math.random() * this.slots);
    for (let i = 0; i < this.slots; i++) {
      const n = (start + i) % this.slots;
      if ((await this.opts.redis.set(this.key(n), this.owner, 'PX', this.ttlMs, 'NX')) === 'OK') {
        this.slot = n;
        return;
      }
    }
    throw new AppError('ORDER_ID_SLOTS_FULL',
      `all ${this.slots} order id slots in Redis (${this.opts.prefix}{orders}:ids:slot:*) are held by running gateways: stop a gateway, or check for another deployment using the same REDIS_PREFIX`,
      { slots: this.slots });
  }

  private async renew(): Promise<void> {
    if (this.closed) return;
    try {
      if ((await RENEW.run(this.opts.redis, [this.key(this.slot)], [this.owner, this.ttlMs])) === 1) return;
      const lost = this.slot;
      await this.take();
      this.opts.log?.warn({ lost, slot: this.slot }, 'order id slot lease was lost (Redis away longer than its TTL, or flushed): took another slot');
    } catch (err) {
      // Kept making ids in the slot: it is ours until the TTL runs out, and renewal retries.
      this.opts.log?.warn({ err: (err as Error).message, slot: this.slot }, 'order id slot lease could not be renewed; retrying');
    }
  }

  /** The slot an id was made in (model.ts IdSource: time × slots + slot). */
  slotOf(id: string): number {
    return Number(BigInt(id) % BigInt(this.slots));
  }

  /**
   * Of these working orders' ids, those this gateway is to work: its own (made in its slot), and
   * those whose placing gateway is gone, claimed in Redis so that one gateway alone takes each.
   */
  async adopt(ids: readonly string[]): Promise<Set<string>> {
    const ours = new Set<string>();
    for (const id of ids) {
      if (!/^\d+$/.test(id)) continue;
      const slot = this.slotOf(id);
      if (slot === this.slot) {
        ours.add(id);
        continue;
      }
      const claim = `${this.opts.prefix}{orders}:work:${id}`;
      if ((await ADOPT.run(this.opts.redis, [this.key(slot), claim], [this.key(this.slot), this.owner, CLAIM_TTL_MS])) === 1) ours.add(id);
    }
    return ours;
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer !== null) clearInterval(this.timer);
    await RELEASE.run(this.opts.redis, [this.key(this.slot)], [this.owner]).catch(() => {});
  }
}
