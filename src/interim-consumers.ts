/**
 * Interim output consumers: until the batch writer (STORE, issue #4) and the live feed (FEED,
 * issue #5) own their consumer slots, these read them so the pipeline never stalls, count what
 * arrives, and log quarantined ticks at most once a second with their reasons.
 */
import type { Instrument } from './kite/instruments.ts';
import type { Logger } from './log.ts';
import { OutputPump } from './outputs.ts';
import type { Pipeline } from './pipeline.ts';
import { N, NType, TickConsumer } from '../workers/normalized.ts';
import { B, BarFlag } from '../workers/stages/bar.ts';
import { QUARANTINE_REASON_NAMES } from '../workers/stages/validate.ts';

export function startInterimConsumers(pipeline: Pipeline, universe: readonly Instrument[], log: Logger) {
  const counts = { ticks: 0, quarantined: 0, barUpdates: 0, barsClosed: 0 };
  let lastLog = 0;
  let suppressed = 0;
  const store = new OutputPump(pipeline.reader(TickConsumer.STORE), {
    tick(v, b) {
      const o = b >> 1;
      if (v.f64[o + N.TYPE] === NType.QUARANTINE) {
        counts.quarantined++;
        const now = Date.now();
        if (now - lastLog >= 1000) {
          const row = v.f64[o + N.INSTR];
          log.warn({
            token: v.f64[o + N.TOKEN],
            symbol: row >= 0 ? universe[row]?.tradingsymbol : undefined,
            reason: QUARANTINE_REASON_NAMES[v.f64[o + N.REASON]],
            price: v.f64[o + N.PRICE],
            suppressedSinceLast: suppressed,
          }, 'tick quarantined');
          lastLog = now;
          suppressed = 0;
        } else {
          suppressed++;
        }
      } else {
        counts.ticks++;
      }
    },
    bar(v, b) {
      if ((v.f64[(b >> 1) + B.FLAGS] & BarFlag.CLOSED) !== 0) counts.barsClosed++;
      else counts.barUpdates++;
    },
  });
  const feed = new OutputPump(pipeline.reader(TickConsumer.FEED), { tick() {}, bar() {} });
  return {
    stats: () => ({ store: { interim: true, ...counts }, feed: { interim: true, records: feed.records } }),
    done: async () => { await Promise.all([store.done, feed.done]); },
  };
}
