/**
 * Interim STORE consumer: until the batch writer (issue #4) owns the STORE slot, this reads it
 * so the pipeline never stalls, and counts what arrives. It stores nothing, and /health says so.
 */
import { OutputPump } from './outputs.ts';
import type { Pipeline } from './pipeline.ts';
import { N, NType, TickConsumer } from '../workers/normalized.ts';
import { B, BarFlag } from '../workers/stages/bar.ts';

export function startInterimStore(pipeline: Pipeline) {
  const counts = { ticks: 0, quarantined: 0, barUpdates: 0, barsClosed: 0 };
  const store = new OutputPump(pipeline.reader(TickConsumer.STORE), {
    tick(v, b) {
      if (v.f64[(b >> 1) + N.TYPE] === NType.QUARANTINE) counts.quarantined++;
      else counts.ticks++;
    },
    bar(v, b) {
      if ((v.f64[(b >> 1) + B.FLAGS] & BarFlag.CLOSED) !== 0) counts.barsClosed++;
      else counts.barUpdates++;
    },
  });
  return {
    stats: () => ({ interim: true, storing: false, ...counts }),
    done: () => store.done,
  };
}
