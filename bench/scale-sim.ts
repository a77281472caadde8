/**
 * The Kite simulator for the scale bench (bench/scale.bench.ts), in a process of its own (forked
 * with `node --import tsx`): what `npm run sim` (src/kite/sim/main.ts) starts, the same
 * startSimulator, plus an IPC channel through which the bench changes the rate (setRate) and reads
 * the packets sent. One simulator serves every configuration and rate, so the services under test
 * stay up while the rate steps from one figure to the next instead of being restarted for each.
 *
 * argv: seed, initial rate (ticks/s). Posts `{ type: 'up', wsUrl, apiUrl }` once listening.
 * Commands (IPC): `{ id, cmd: 'rate', rate }`, `{ id, cmd: 'stats' }`; each answered with
 * `{ type: 'answer', id, v }`. Closes and exits when the channel closes or on SIGTERM.
 */
import { startSimulator } from '../src/kite/sim/server.ts';

export type SimCommand = { id: number; cmd: 'rate'; rate: number } | { id: number; cmd: 'stats' };
export interface SimCounts { packets: number; frames: number; connections: number }

const [seed, rate] = process.argv.slice(2).map(Number);
const sim = await startSimulator({ port: 0, host: '127.0.0.1', seed, rate });

let closing = false;
function stop(): void {
  if (closing) return;
  closing = true;
  sim.close().then(() => process.exit(0), () => process.exit(1));
}

process.on('message', (c: SimCommand) => {
  const answer = (v: unknown): void => void process.send!({ type: 'answer', id: c.id, v });
  if (c.cmd === 'rate') {
    sim.setRate(c.rate);
    answer(true);
  } else {
    const v: SimCounts = { packets: sim.stats.packets, frames: sim.stats.frames, connections: sim.connections() };
    answer(v);
  }
});
process.on('disconnect', stop);
process.on('SIGTERM', stop);
process.send!({ type: 'up', wsUrl: sim.wsUrl, apiUrl: sim.apiUrl });
