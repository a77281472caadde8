/**
 * Runs one output consumer in this thread: sleeps on the pipeline's doorbell, drains every
 * shard's tick and bar rings, hands each record to the consumer's handlers. Stops once every shard
 * has closed its outputs and all was read.
 */
import type { RecordViews } from './kite/record.ts';
import type { OutputReader } from './pipeline.ts';

export interface OutputHandlers {
  /** A canonical tick (normalized.ts) at f64 index `base >> 1` of `v.f64`. */
  tick(v: RecordViews, base: number): void;
  /** A bar (bar.ts) at f64 index `base >> 1` of `v.f64`. */
  bar(v: RecordViews, base: number): void;
  /** After each drain that handed out records. */
  batchEnd?(): void;
}

export class OutputPump {
  records = 0;
  readonly done: Promise<void>;

  constructor(private readonly reader: OutputReader, private readonly h: OutputHandlers, idleMs = 250) {
    const tick = h.tick.bind(h);
    const bar = h.bar.bind(h);
    this.done = (async () => {
      for (;;) {
        const n = reader.drain(tick, bar);
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
