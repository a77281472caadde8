/**
 * Quarantined ticks in the log, at a bounded rate: at most one line a second, naming the
 * instrument, the reason and how many more were quarantined since the last line. The counts by
 * reason are in /health (and the store keeps every quarantined tick).
 */
import type { Logger } from './log.ts';
import type { HubListener } from './gateway/hub.ts';
import { N } from './core/tick.ts';
import { QUARANTINE_REASON_NAMES } from './core/tick.ts';

export function quarantineLog(log: Logger, symbols: readonly string[], intervalMs = 1000): HubListener {
  let last = 0;
  let suppressed = 0;
  return {
    quarantine(f, o, row) {
      const now = Date.now();
      if (now - last < intervalMs) {
        suppressed++;
        return;
      }
      log.warn({
        token: f[o + N.TOKEN],
        symbol: row >= 0 ? symbols[row] : undefined,
        reason: QUARANTINE_REASON_NAMES[f[o + N.REASON]],
        price: f[o + N.PRICE],
        exchangeTime: new Date(f[o + N.EXCH_TIME_MS]).toISOString(),
        suppressedSinceLast: suppressed,
      }, 'tick quarantined');
      last = now;
      suppressed = 0;
    },
  };
}
