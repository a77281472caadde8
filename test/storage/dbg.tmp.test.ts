import { it } from 'vitest';
import { WC } from '../../workers/writer/protocol.ts';
import { stream, universe } from '../pipeline/harness.ts';
import { createTestDatabase } from '../support/pg.ts';
import { storeRun } from '../support/store-run.ts';
it('timing', async () => {
  const t = await createTestDatabase('dbg');
  const inst = universe();
  const t0 = Date.now();
  await storeRun({ frames: stream(inst, 300, 11), instruments: inst, databaseUrl: t.url, during: async (s) => {
    const iv = setInterval(() => console.log(Date.now() - t0, 'released', s.counters[WC.RELEASED], 'batches', s.counters[WC.BATCHES], 'lag', JSON.stringify(s.lag()), 'state', s.counters[WC.STATE]), 250);
    setTimeout(() => clearInterval(iv), 8000);
  } });
  await t.drop();
});
