/**
 * The drain message: what the ingest sends the gateways through Redis pub/sub, one message per
 * drain of the hub (src/gateway/hub.ts), holding that drain's ticks and bars in the order the
 * hub handed them to its listeners. A gateway hands the same records to the same listeners in the
 * same order and batches, so its clients get what a client of a ROLE=all process gets.
 *
 * Records travel in the pipeline's own layouts (src/core/tick.ts N, src/core/bar.ts B) as
 * little-endian f64, as the cache already stores them (src/cache/redis.ts): the ingest copies them
 * in, the gateway reads them in place. Nothing is decoded or encoded between the two, and each
 * gateway encodes a tick only for the (instrument, encoding) pairs its own clients follow, as the
 * one process does. Encoding every variant at the ingest (6 msgpack forms and 3 Kite modes) would
 * spend the ingest's core on forms nobody follows and make the message larger than the record.
 *
 * | off | type | field      | meaning                                                             |
 * |-----|------|------------|---------------------------------------------------------------------|
 * | 0   | u32  | MAGIC      | 0x3146354e ('N5F1' as bytes): layout version                        |
 * | 4   | u32  | EPOCH      | random per ingest start: a new owner restarts SEQ                   |
 * | 8   | f64  | SEQ        | 1, 2, 3 … per EPOCH; a gateway seeing a gap re-reads the snapshot   |
 * | 16  | f64  | SENT_MS    | ingest wall clock at publish, epoch ms: a gateway's lag             |
 * | 24  | u32  | TICKS      | tick records that follow                                            |
 * | 28  | u32  | BARS       | bar records after the ticks                                         |
 * | 32  | u32  | UNIVERSE   | id of the instrument list whose rows the records' INSTR index       |
 * | 36  | u32  | (zero)     | pads the records to 8-byte alignment                                |
 * | 40  |      | ticks      | TICKS × 512 B (64 f64, tick.ts N)                                   |
 * |     |      | bars       | BARS × 112 B (14 f64, bar.ts B)                                     |
 *
 * Little-endian hosts only, as the cache (its module refuses to load elsewhere).
 */
import { N_FIELDS } from '../core/tick.ts';
import { BAR_FIELDS } from '../core/bar.ts';

export const DRAIN_MAGIC = 0x3146354e;
export const DRAIN_HEAD_BYTES = 40;
export const TICK_BYTES = N_FIELDS * 8;
export const BAR_BYTES = BAR_FIELDS * 8;

export const DH = {
  MAGIC: 0,
  EPOCH: 4,
  SEQ: 8,
  SENT_MS: 16,
  TICKS: 24,
  BARS: 28,
  UNIVERSE: 32,
} as const;

export interface DrainHead {
  epoch: number;
  seq: number;
  sentMs: number;
  ticks: number;
  bars: number;
  universe: number;
}

/** Read a message's head into `out`; false when it is not a drain message of this layout (then count and skip it). */
export function readDrainHead(msg: Uint8Array, out: DrainHead): boolean {
  if (msg.byteLength < DRAIN_HEAD_BYTES) return false;
  const v = new DataView(msg.buffer, msg.byteOffset, msg.byteLength);
  if (v.getUint32(DH.MAGIC, true) !== DRAIN_MAGIC) return false;
  out.epoch = v.getUint32(DH.EPOCH, true);
  out.seq = v.getFloat64(DH.SEQ, true);
  out.sentMs = v.getFloat64(DH.SENT_MS, true);
  out.ticks = v.getUint32(DH.TICKS, true);
  out.bars = v.getUint32(DH.BARS, true);
  out.universe = v.getUint32(DH.UNIVERSE, true);
  return msg.byteLength === DRAIN_HEAD_BYTES + out.ticks * TICK_BYTES + out.bars * BAR_BYTES;
}

/** Write a head at the start of `buf`. */
export function writeDrainHead(buf: Uint8Array, h: DrainHead): void {
  const v = new DataView(buf.buffer, buf.byteOffset, DRAIN_HEAD_BYTES);
  v.setUint32(DH.MAGIC, DRAIN_MAGIC, true);
  v.setUint32(DH.EPOCH, h.epoch, true);
  v.setFloat64(DH.SEQ, h.seq, true);
  v.setFloat64(DH.SENT_MS, h.sentMs, true);
  v.setUint32(DH.TICKS, h.ticks, true);
  v.setUint32(DH.BARS, h.bars, true);
  v.setUint32(DH.UNIVERSE, h.universe, true);
  v.setUint32(36, 0, true);
}

/** FNV-1a over the tokens in row order: the same instrument list gives the same id in every process. */
export function universeId(tokens: readonly number[]): number {
  let h = 0x811c9dc5;
  for (const t of tokens) {
    for (let k = 0; k < 4; k++) {
      h ^= (t >>> (8 * k)) & 0xff;
      h = Math.imul(h, 0x01000193);
    }
  }
  return h >>> 0;
}

/** The analytics frame message: u16 key length, key (UTF-8), u32 records length, records, plain (both msgpack, src/analytics/). */
export function encodeAnalytics(key: string, records: Uint8Array, plain: Uint8Array): Buffer {
  const k = Buffer.from(key, 'utf8');
  const out = Buffer.allocUnsafe(2 + k.length + 4 + records.byteLength + plain.byteLength);
  out.writeUInt16LE(k.length, 0);
  k.copy(out, 2);
  out.writeUInt32LE(records.byteLength, 2 + k.length);
  out.set(records, 6 + k.length);
  out.set(plain, 6 + k.length + records.byteLength);
  return out;
}

export function decodeAnalytics(msg: Buffer): { key: string; records: Uint8Array; plain: Uint8Array } | null {
  if (msg.length < 6) return null;
  const kl = msg.readUInt16LE(0);
  if (msg.length < 6 + kl) return null;
  const rl = msg.readUInt32LE(2 + kl);
  if (msg.length < 6 + kl + rl) return null;
  // Copies: the frames outlive the message (kept as the latest of their key).
  return {
    key: msg.toString('utf8', 2, 2 + kl),
    records: Uint8Array.prototype.slice.call(msg, 6 + kl, 6 + kl + rl),
    plain: Uint8Array.prototype.slice.call(msg, 6 + kl + rl),
  };
}
