/**
 * Both ends of each transport the engines bench (bench/engines.bench.ts) compares, with the same
 * messages (bench/engines-frames.ts):
 *
 * | engine          | publisher                                      | subscriber                                        |
 * |-----------------|------------------------------------------------|---------------------------------------------------|
 * | tcp (floor)     | net.Server, u32 LE length + message per socket | net.connect, splits frames                        |
 * | redis-pubsub    | PUBLISH bench-engines-live                     | SUBSCRIBE, 'messageBuffer'                        |
 * | redis-streams   | XADD bench-engines-live MAXLEN ~ n * d <msg>   | XREAD COUNT 1000 BLOCK 1000 from the last id      |
 * | nats            | core publish bench-engines.live                | core subscription                                 |
 * | jetstream       | js.publish into a memory stream (PubAck)       | ordered consumer, deliver new                     |
 * | jetstream-last  | core publish (no PubAck), one subject per      | ordered consumer, deliver last per subject, then  |
 * |                 | instrument, into a memory stream with          | live (the snapshot on connect comes with it)      |
 * |                 | max_msgs_per_subject = 1                       |                                                   |
 * | jetstream-last- | the same with js.publish, each awaiting its    | the same                                          |
 * | acked           | PubAck                                         |                                                   |
 *
 * A core publish to a stream's subject is stored all the same (the server stores it as it reads
 * the publisher's socket); it only goes without the PubAck, which the live feed has no use for.
 * Everything created here is named bench-engines-* (Redis keys, streams) or bench-engines.*
 * (subjects) and removed by the publisher's close().
 */
import net from 'node:net';
import { Redis } from 'ioredis';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { DeliverPolicy, DiscardPolicy, jetstream, jetstreamManager, RetentionPolicy, StorageType, type JetStreamClient } from '@nats-io/jetstream';
import { wallMs } from './engines-frames.ts';

export const ENGINES = ['tcp', 'redis-pubsub', 'redis-streams', 'nats', 'jetstream', 'jetstream-last', 'jetstream-last-acked'] as const;
export type Engine = (typeof ENGINES)[number];

export const REDIS = { host: '127.0.0.1', port: 6379 } as const;
export const NATS = '127.0.0.1:4222';
export const CHANNEL = 'bench-engines-live';
export const STREAM_KEY = 'bench-engines-live';
export const SNAPSHOT_PREFIX = 'bench-engines-q:';
export const SUBJECT = 'bench-engines.live';
export const JS_STREAM = 'bench-engines-batch';
export const JS_LAST_STREAM = 'bench-engines-last';
export const LAST_SUBJECTS = 'bench-engines.q.*';
export const lastSubject = (token: number): string => `bench-engines.q.${token}`;

/** What the subscribers need to reach the publisher's engine. */
export interface Endpoint {
  engine: Engine;
  /** tcp: the publisher's port. */
  port?: number;
}

export interface Publisher {
  readonly engine: Engine;
  readonly endpoint: Endpoint;
  /** Whether messages go one per instrument (token picks the subject). */
  readonly perInstrument: boolean;
  publish(msg: Buffer, token: number): void;
  /** Publishes the engine has not answered yet (Redis replies, PubAcks); 0 where it never answers. */
  inFlight(): number;
  /** Bytes waiting in this process for the socket (tcp: the fullest socket; others: 0 / unknown). */
  queuedBytes(): number;
  /** Whether the engine answers each publish (Redis reply, PubAck). */
  readonly acks: boolean;
  /** Called with publish → answer time, µs, for each answer. */
  onAck: (us: number) => void;
  errors: number;
  lastError: string;
  /** Prepare for `msgBytes`-sized messages (Redis Streams sizes MAXLEN from it). */
  configure(msgBytes: number): Promise<void>;
  /** Resolves when every publish so far has been answered (or written, for tcp/nats). */
  drain(): Promise<void>;
  /** The engine's own memory for what it holds, bytes, where it tells (Redis INFO, JetStream stream bytes). */
  serverBytes(): Promise<number | null>;
  /** Resolves once every subscriber is attached (tcp: connected; the engines need no wait). */
  ready(): Promise<void>;
  /** Delete what was created, close connections. */
  close(): Promise<void>;
}

/** Bytes of history a Redis stream keeps (MAXLEN ~ this / message size): a lagging reader's longest backlog. */
export const STREAM_BYTES = 32 << 20;
/** The JetStream batch stream's bound (memory storage, old messages discarded). */
export const JS_STREAM_BYTES = 64 << 20;

/** Connection name of the subscribers' Redis connections (CLIENT LIST shows their output buffers). */
export const SUB_NAME = 'bench-engines-sub';

/** Output buffer bytes Redis holds for each subscriber connection (CLIENT LIST omem). */
export async function redisSubscriberOutput(admin: Redis): Promise<number[]> {
  const list = String(await admin.call('CLIENT', 'LIST'));
  return list.split('\n').filter((l) => l.includes(` name=${SUB_NAME} `)).map((l) => Number(/ omem=(\d+)/.exec(l)?.[1] ?? 0));
}

export async function createPublisher(engine: Engine, subscribers: number): Promise<Publisher> {
  switch (engine) {
    case 'tcp': return TcpPublisher.start(subscribers);
    case 'redis-pubsub':
    case 'redis-streams': return RedisPublisher.start(engine);
    case 'nats':
    case 'jetstream':
    case 'jetstream-last':
    case 'jetstream-last-acked': return NatsPublisher.start(engine);
  }
}

type NatsEngine = 'nats' | 'jetstream' | 'jetstream-last' | 'jetstream-last-acked';

// --- tcp --------------------------------------------------------------------------------------

class TcpPublisher implements Publisher {
  readonly engine = 'tcp' as const;
  readonly perInstrument = false;
  readonly acks = false;
  onAck = (_us: number): void => {};
  errors = 0;
  lastError = '';
  private readonly sockets: net.Socket[] = [];
  private readonly head = Buffer.alloc(4);
  private connected!: Promise<void>;

  private constructor(private readonly server: net.Server, readonly endpoint: Endpoint) {}

  static async start(subscribers: number): Promise<TcpPublisher> {
    const server = net.createServer();
    await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
    const port = (server.address() as net.AddressInfo).port;
    const p = new TcpPublisher(server, { engine: 'tcp', port });
    p.connected = new Promise((res) => {
      server.on('connection', (s) => {
        s.setNoDelay(true);
        s.on('error', (e) => {
          p.errors++;
          p.lastError = e.message;
        });
        s.on('close', () => p.sockets.splice(p.sockets.indexOf(s), 1));
        p.sockets.push(s);
        if (p.sockets.length === subscribers) res();
      });
    });
    return p;
  }

  /** Resolves once every subscriber has connected. */
  ready(): Promise<void> {
    return this.connected;
  }

  publish(msg: Buffer): void {
    const h = Buffer.allocUnsafe(4);
    h.writeUInt32LE(msg.length, 0);
    for (const s of this.sockets) {
      if (s.destroyed) continue;
      s.cork();
      s.write(h);
      s.write(msg);
      s.uncork();
    }
  }

  inFlight(): number {
    return 0;
  }

  queuedBytes(): number {
    let m = 0;
    for (const s of this.sockets) if (s.writableLength > m) m = s.writableLength;
    return m;
  }

  async configure(): Promise<void> {}

  async drain(): Promise<void> {
    await Promise.all(this.sockets.map((s) => (s.writableLength === 0 ? null : new Promise((res) => s.once('drain', res)))));
  }

  async serverBytes(): Promise<number | null> {
    return null;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise((res) => this.server.close(res));
  }
}

// --- Redis ------------------------------------------------------------------------------------

class RedisPublisher implements Publisher {
  readonly perInstrument = false;
  readonly acks = true;
  onAck = (_us: number): void => {};
  readonly endpoint: Endpoint;
  errors = 0;
  lastError = '';
  private pending = 0;
  private maxlen = 1000;
  private waiters: (() => void)[] = [];

  private constructor(readonly engine: 'redis-pubsub' | 'redis-streams', private readonly redis: Redis) {
    this.endpoint = { engine };
  }

  static async start(engine: 'redis-pubsub' | 'redis-streams'): Promise<RedisPublisher> {
    const redis = new Redis({ ...REDIS, lazyConnect: true, maxRetriesPerRequest: 1 });
    await redis.connect();
    await redis.del(STREAM_KEY);
    return new RedisPublisher(engine, redis);
  }

  async ready(): Promise<void> {}

  async configure(msgBytes: number): Promise<void> {
    this.maxlen = Math.max(100, Math.ceil(STREAM_BYTES / msgBytes));
    await this.redis.del(STREAM_KEY);
  }

  publish(msg: Buffer): void {
    this.pending++;
    const t = wallMs();
    const p = this.engine === 'redis-pubsub'
      ? this.redis.publish(CHANNEL, msg)
      : this.redis.xadd(STREAM_KEY, 'MAXLEN', '~', this.maxlen, '*', 'd', msg);
    p.then(() => this.answered(t), (e: Error) => {
      this.errors++;
      this.lastError = e.message;
      this.answered(t);
    });
  }

  private answered(t: number): void {
    this.onAck((wallMs() - t) * 1000);
    if (--this.pending === 0) for (const w of this.waiters.splice(0)) w();
  }

  inFlight(): number {
    return this.pending;
  }

  queuedBytes(): number {
    return 0;
  }

  drain(): Promise<void> {
    return this.pending === 0 ? Promise.resolve() : new Promise((res) => this.waiters.push(res));
  }

  async serverBytes(): Promise<number | null> {
    const info = await this.redis.info('memory');
    const m = /used_memory:(\d+)/.exec(info);
    return m ? Number(m[1]) : null;
  }

  async close(): Promise<void> {
    await this.drain();
    await this.redis.del(STREAM_KEY);
    const keys = await this.redis.keys(`${SNAPSHOT_PREFIX}*`);
    if (keys.length > 0) await this.redis.del(...keys);
    await this.redis.quit();
  }
}

// --- NATS -------------------------------------------------------------------------------------

class NatsPublisher implements Publisher {
  readonly acks: boolean;
  onAck = (_us: number): void => {};
  readonly endpoint: Endpoint;
  readonly perInstrument: boolean;
  errors = 0;
  lastError = '';
  private pending = 0;
  private waiters: (() => void)[] = [];
  private readonly subjects = new Map<number, string>();

  private constructor(readonly engine: NatsEngine, private readonly nc: NatsConnection, private readonly js: JetStreamClient | null) {
    this.endpoint = { engine };
    this.perInstrument = engine.startsWith('jetstream-last');
    this.acks = js !== null;
  }

  static async start(engine: NatsEngine): Promise<NatsPublisher> {
    const nc = await connect({ servers: NATS });
    let js: JetStreamClient | null = null;
    if (engine !== 'nats') {
      const jsm = await jetstreamManager(nc);
      for (const name of [JS_STREAM, JS_LAST_STREAM]) await jsm.streams.delete(name).catch(() => false);
      if (engine === 'jetstream') {
        await jsm.streams.add({
          name: JS_STREAM, subjects: [SUBJECT], storage: StorageType.Memory, retention: RetentionPolicy.Limits,
          max_bytes: JS_STREAM_BYTES, discard: DiscardPolicy.Old, num_replicas: 1,
        });
      } else {
        await jsm.streams.add({
          name: JS_LAST_STREAM, subjects: [LAST_SUBJECTS], storage: StorageType.Memory, retention: RetentionPolicy.Limits,
          max_msgs_per_subject: 1, discard: DiscardPolicy.Old, num_replicas: 1,
        });
      }
      if (engine !== 'jetstream-last') js = jetstream(nc);
    }
    return new NatsPublisher(engine, nc, js);
  }

  async ready(): Promise<void> {}

  async configure(): Promise<void> {}

  publish(msg: Buffer, token: number): void {
    let subject = SUBJECT;
    if (this.perInstrument) {
      subject = this.subjects.get(token) ?? lastSubject(token);
      this.subjects.set(token, subject);
    }
    if (this.js === null) {
      this.nc.publish(subject, msg);
      return;
    }
    this.pending++;
    const t = wallMs();
    this.js.publish(subject, msg).then(() => this.answered(t), (e: Error) => {
      this.errors++;
      this.lastError = e.message;
      this.answered(t);
    });
  }

  private answered(t: number): void {
    this.onAck((wallMs() - t) * 1000);
    if (--this.pending === 0) for (const w of this.waiters.splice(0)) w();
  }

  inFlight(): number {
    return this.pending;
  }

  queuedBytes(): number {
    return 0;
  }

  async drain(): Promise<void> {
    await this.nc.flush();
    if (this.pending > 0) await new Promise<void>((res) => this.waiters.push(res));
  }

  async serverBytes(): Promise<number | null> {
    if (this.engine === 'nats') return null;
    const jsm = await jetstreamManager(this.nc);
    const info = await jsm.streams.info(this.engine === 'jetstream' ? JS_STREAM : JS_LAST_STREAM);
    return info.state.bytes;
  }

  async close(): Promise<void> {
    await this.drain().catch(() => undefined);
    if (this.engine !== 'nats') {
      const jsm = await jetstreamManager(this.nc);
      for (const name of [JS_STREAM, JS_LAST_STREAM]) await jsm.streams.delete(name).catch(() => false);
    }
    await this.nc.close();
  }
}

// --- subscribers ------------------------------------------------------------------------------

export interface Subscription {
  close(): Promise<void>;
}

/** Connection events a subscriber saw: disconnects, reconnects, errors the engine reported. */
export type OnEvent = (kind: string, detail: string) => void;

export async function subscribe(ep: Endpoint, onMessage: (msg: Uint8Array) => void, onEvent: OnEvent): Promise<Subscription> {
  switch (ep.engine) {
    case 'tcp': return tcpSubscribe(ep.port!, onMessage, onEvent);
    case 'redis-pubsub': return redisPubSub(onMessage, onEvent);
    case 'redis-streams': return redisStreams(onMessage, onEvent);
    case 'nats': return natsCore(onMessage, onEvent);
    case 'jetstream':
    case 'jetstream-last':
    case 'jetstream-last-acked': return natsJetStream(ep.engine === 'jetstream' ? 'jetstream' : 'jetstream-last', onMessage, onEvent);
  }
}

/** A u32 LE length, then that many bytes; a message split across reads is joined once. */
async function tcpSubscribe(port: number, onMessage: (msg: Uint8Array) => void, onEvent: OnEvent): Promise<Subscription> {
  const s = net.connect(port, '127.0.0.1');
  s.setNoDelay(true);
  await new Promise<void>((res, rej) => s.once('connect', res).once('error', rej));
  let rest: Buffer | null = null;
  s.on('data', (chunk: Buffer) => {
    let b = rest === null ? chunk : Buffer.concat([rest, chunk]);
    let p = 0;
    while (b.length - p >= 4) {
      const len = b.readUInt32LE(p);
      if (b.length - p - 4 < len) break;
      onMessage(b.subarray(p + 4, p + 4 + len));
      p += 4 + len;
    }
    rest = p === b.length ? null : b.subarray(p);
    b = rest ?? b;
  });
  s.on('close', () => onEvent('close', 'tcp'));
  s.on('error', (e) => onEvent('error', e.message));
  return { close: async () => void s.destroy() };
}

function redisEvents(r: Redis, onEvent: OnEvent): void {
  r.on('close', () => onEvent('close', 'redis connection closed'));
  r.on('reconnecting', () => onEvent('reconnect', 'redis reconnecting'));
  r.on('error', (e: Error) => onEvent('error', e.message));
}

async function redisPubSub(onMessage: (msg: Uint8Array) => void, onEvent: OnEvent): Promise<Subscription> {
  const r = new Redis({ ...REDIS, lazyConnect: true, connectionName: SUB_NAME });
  await r.connect();
  r.on('messageBuffer', (_ch: Buffer, msg: Buffer) => onMessage(msg));
  await r.subscribe(CHANNEL);
  redisEvents(r, onEvent);
  return { close: async () => void (await r.quit()) };
}

/**
 * XREAD from the last id read (starting at `$`, what is added from now on). A reader that was away
 * finds what MAXLEN kept: the trimmed entries show as sequence gaps.
 */
async function redisStreams(onMessage: (msg: Uint8Array) => void, onEvent: OnEvent): Promise<Subscription> {
  const r = new Redis({ ...REDIS, lazyConnect: true, protocol: 2, connectionName: SUB_NAME });
  await r.connect();
  redisEvents(r, onEvent);
  let last: Buffer | string = '$';
  let open = true;
  const loop = (async () => {
    while (open) {
      let res: unknown;
      try {
        res = await r.callBuffer('XREAD', 'COUNT', 1000, 'BLOCK', 1000, 'STREAMS', STREAM_KEY, last);
      } catch (e) {
        if (open) onEvent('error', (e as Error).message);
        continue;
      }
      if (!res) continue;
      for (const [, entries] of res as [Buffer, [Buffer, Buffer[]][]][]) {
        for (const [id, fields] of entries) {
          last = id;
          onMessage(fields[1]);
        }
      }
    }
  })();
  return {
    close: async () => {
      open = false;
      r.disconnect();
      await loop.catch(() => undefined);
    },
  };
}

function natsEvents(nc: NatsConnection, onEvent: OnEvent): void {
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === 'ping') continue;
      onEvent(s.type, 'error' in s && s.error ? String(s.error) : s.type);
    }
  })();
}

async function natsCore(onMessage: (msg: Uint8Array) => void, onEvent: OnEvent): Promise<Subscription> {
  const nc = await connect({ servers: NATS, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
  natsEvents(nc, onEvent);
  nc.subscribe(SUBJECT, { callback: (err, m) => (err ? onEvent('error', err.message) : onMessage(m.data)) });
  await nc.flush();
  return { close: () => nc.close() };
}

/**
 * An ordered consumer (ephemeral, no acks, recreated by the client when it misses a heartbeat or a
 * sequence): `jetstream` from new messages on; `jetstream-last` from the last message of each
 * instrument's subject (the snapshot), then live.
 */
async function natsJetStream(engine: 'jetstream' | 'jetstream-last', onMessage: (msg: Uint8Array) => void, onEvent: OnEvent): Promise<Subscription> {
  const nc = await connect({ servers: NATS, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
  natsEvents(nc, onEvent);
  const js = jetstream(nc);
  const c = engine === 'jetstream'
    ? await js.consumers.get(JS_STREAM, { filter_subjects: SUBJECT, deliver_policy: DeliverPolicy.New })
    : await js.consumers.get(JS_LAST_STREAM, { filter_subjects: LAST_SUBJECTS, deliver_policy: DeliverPolicy.LastPerSubject });
  const msgs = await c.consume({
    max_messages: engine === 'jetstream' ? 256 : 1024,
    callback: (m) => onMessage(m.data),
  });
  void (async () => {
    for await (const s of msgs.status()) {
      if (s.type === 'next' || s.type === 'heartbeat') continue;
      onEvent(`js:${s.type}`, JSON.stringify(s));
    }
  })();
  return {
    close: async () => {
      msgs.stop();
      await nc.close();
    },
  };
}
