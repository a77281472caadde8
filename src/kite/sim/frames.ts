/**
 * Kite frames for one connection from the market's latest round: each packet in the mode the
 * connection chose for its token, then the snapshots it is owed, in frames of at most
 * FRAME_CAP_BYTES (docs/kite-protocol.md has the frame layout).
 *
 * Every update goes out in every mode, changed or not in that mode: in ltp mode a book change or a
 * trade at the last price repeats the previous 8-byte packet (see market.ts), and is sent all the
 * same. A row both traded and owed a snapshot goes once, in the round's place.
 *
 * Backpressure: uWS copies what `send` is given, so one buffer serves every frame of every
 * connection. A connection whose unsent bytes pass `maxBuffered` is skipped rather than buffered
 * for: the rows it missed are owed a snapshot each, sent once it drains (coalesced, counted).
 *
 * No allocation per packet: packets are written straight into the buffer through one DataView
 * made at construction; per frame there is one subarray for `send`.
 */
import { performance } from 'node:perf_hooks';
import { writeWirePacket } from '../codec.ts';
import { Frame } from '../packet-layout.ts';
import { KIND_LENGTH } from '../../core/packet-slot.ts';
import type { Market } from './market.ts';
import type { Subscriptions } from './subscriptions.ts';

/** Frame size bound: many packets per frame, the u16 count far from full (64 KiB / 10 B per LTP). */
export const FRAME_CAP_BYTES = 64 * 1024;

// Bound once: read per packet, and an imported binding is reloaded at every use (see codec.ts).
const COUNT = Frame.COUNT;
const HEADER_BYTES = Frame.HEADER_BYTES;
const LENGTH_BYTES = Frame.LENGTH_BYTES;

/** The part of a uWS WebSocket frames need. */
export interface FrameSocket {
  getBufferedAmount(): number;
  /** 0: built up, 1: sent, 2: dropped (uWS's backpressure limit). */
  send(message: Uint8Array, isBinary: boolean): number;
}

/** A connection as frames see it. */
export interface FrameTarget {
  /** For `onFrame`. */
  readonly id: number;
  /** null once closed: nothing is sent. */
  readonly ws: FrameSocket | null;
  readonly subs: Subscriptions;
  /** performance.now() of the last send, set here per frame (heartbeats wait on it). */
  lastSendMs: number;
}

/** The counters frames keep (a subset of the simulator's SimStats). */
export interface FrameStats {
  frames: number;
  packets: number;
  bytes: number;
  skippedFrames: number;
  coalescedPackets: number;
  droppedByUws: number;
}

export interface FrameOptions {
  /** Unsent bytes above which a connection is skipped. */
  maxBuffered: number;
  /** Called with each frame uWS took (see SimulatorOptions.onFrame). */
  onFrame?: (conn: number, frame: Uint8Array) => void;
}

export class FrameBuilder {
  private readonly buf = new Uint8Array(FRAME_CAP_BYTES);
  private readonly dv = new DataView(this.buf.buffer);
  private readonly maxBuffered: number;
  private readonly onFrame: ((conn: number, frame: Uint8Array) => void) | undefined;
  /** Packets and bytes (header included) of the frame being built. */
  private packets = 0;
  private bytes: number = HEADER_BYTES;

  constructor(
    private readonly market: Market,
    private readonly stats: FrameStats,
    opts: FrameOptions,
  ) {
    this.maxBuffered = opts.maxBuffered;
    this.onFrame = opts.onFrame;
  }

  /**
   * Sends connection `c` its share of the round just traded (`updated[0..k)`, distinct rows) and
   * the snapshots it is owed, or, when it is behind, owes it snapshots of its share instead.
   */
  emit(c: FrameTarget, updated: Int32Array, k: number): void {
    const ws = c.ws;
    if (ws === null) return;
    const subs = c.subs;
    const modes = subs.modes;
    if (ws.getBufferedAmount() > this.maxBuffered) {
      let skipped = 0;
      for (let j = 0; j < k; j++) {
        const i = updated[j];
        if (modes[i] !== 0) {
          subs.owe(i);
          skipped++;
        }
      }
      if (skipped > 0) {
        this.stats.skippedFrames++;
        this.stats.coalescedPackets += skipped;
      }
      return;
    }
    this.packets = 0;
    this.bytes = HEADER_BYTES;
    const flags = subs.owedFlag;
    for (let j = 0; j < k; j++) {
      const i = updated[j];
      const m = modes[i];
      if (m === 0) continue;
      if (flags[i] === 1) flags[i] = 2; // owed a snapshot, and this is one
      this.add(c, ws, i, m);
    }
    const n = subs.owedCount;
    if (n > 0) {
      const owed = subs.owed;
      for (let p = 0; p < n; p++) {
        const i = owed[p];
        const stillOwed = flags[i] === 1;
        flags[i] = 0;
        if (stillOwed && modes[i] !== 0) this.add(c, ws, i, modes[i]);
      }
      subs.owedCount = 0;
    }
    this.flush(c, ws);
  }

  private add(c: FrameTarget, ws: FrameSocket, i: number, mode: number): void {
    const t = this.market.tickOf(i, mode);
    const plen = KIND_LENGTH[t.kind];
    if (this.bytes + LENGTH_BYTES + plen > FRAME_CAP_BYTES) this.flush(c, ws);
    const p = this.bytes;
    this.dv.setUint16(p, plen);
    writeWirePacket(this.dv, p + LENGTH_BYTES, t);
    this.bytes = p + LENGTH_BYTES + plen;
    this.packets++;
  }

  private flush(c: FrameTarget, ws: FrameSocket): void {
    const packets = this.packets;
    if (packets === 0) return;
    const len = this.bytes;
    this.dv.setUint16(COUNT, packets);
    const frame = this.buf.subarray(0, len);
    const stats = this.stats;
    const r = ws.send(frame, true);
    if (r === 2) stats.droppedByUws++;
    else if (this.onFrame !== undefined) this.onFrame(c.id, frame);
    stats.frames++;
    stats.packets += packets;
    stats.bytes += len;
    c.lastSendMs = performance.now();
    this.packets = 0;
    this.bytes = HEADER_BYTES;
  }
}
