/**
 * Runs one output consumer in this thread: sleeps on the pipeline's doorbell, drains every
 * shard's tick and bar rings, hands each record to the consumer's handlers. Stops once every shard
 * has closed its outputs and all was read.
 */
import type { SlotViews } from './core/packet-slot.ts';
import type { OutputReader } from './pipeline.ts';

export interface OutputHandlers {
  /** A canonical tick (tick.ts) at f64 index `base >> 1` of `v.f64`. */
  tick(v: SlotViews, base: number): void;
  /** A bar (bar.ts) at f64 index `base >> 1` of `v.f64`. */
  bar(v: SlotViews, base: number): void;
  /** After each drain that handed out records. */
  batchEnd?(): void;
}

export interface OutputPumpOptions {
  /** Longest sleep between checks when nothing is signalled, ms. Default 250. */
  idleMs?: number;
  /**
   * At most this many records per ring between two batchEnd calls (default: all there are). The
   * feed hub bounds it: a consumer that fell behind then publishes every few thousand records
   * instead of once for a whole ring, and its per-drain buffers stay that small.
   */
  maxPerDrain?: number;
}

/** The subset of OutputReader a pump uses. */
export type PumpReader = Pick<OutputReader, 'drain' | 'done' | 'waitForData'>;

export class OutputPump {
  records = 0;
  readonly done: Promise<void>;

  constructor(private readonly reader: PumpReader, private readonly h: OutputHandlers, opts: OutputPumpOptions = {}) {
    const tick = h.tick.bind(h);
    const bar = h.bar.bind(h);
    const idleMs = opts.idleMs ?? 250;
    const max = opts.maxPerDrain;
    this.done = (async () => {
      for (;;) {
        const n = reader.drain(tick, bar, max);
        if (n > 0) {
          this.records += n;
          h.batchEnd?.();
          continue;
        }
        if (reader.done()) return;
        await reader.waitForData(idleMs);
      }
    })();
  }
}
