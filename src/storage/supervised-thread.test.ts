import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../log.ts';
import { until } from '../../test/support/until.ts';
import { SupervisedThread, type Backoff } from './supervised-thread.ts';

const TEST_WORKER = new URL('../../test/support/supervised-worker.ts', import.meta.url);

type Control = { type: 'query'; id: number; text: string; params: unknown[] } | { type: 'stop' };
type Message = { type: 'hello' } | { type: 'log'; level: 'info'; obj: Record<string, unknown>; msg: string } | { type: 'result'; id: number };

const threads: SupervisedThread<Control, Message>[] = [];
afterEach(async () => {
  await Promise.all(threads.splice(0).map((t) => t.end({ type: 'stop' }, 2000)));
});

function supervise(opts: { backoff?: Backoff; stoppedBy?: (code: number | null) => boolean } = {}) {
  const lines: Record<string, unknown>[] = [];
  const messages: Message[] = [];
  const log = createLogger('debug', 'test', { write: (s: string) => { lines.push(JSON.parse(s)); } });
  const thread = new SupervisedThread<Control, Message>({
    name: 'test',
    module: TEST_WORKER,
    data: null,
    log,
    died: { code: 'TEST_THREAD_DIED', msg: 'the test thread died', reason: (code) => code === 75 ? 'it stalled' : undefined },
    onMessage: (m) => messages.push(m),
    backoff: opts.backoff ?? { minMs: 5, maxMs: 20, healthyAfterMs: 60_000 },
    stoppedBy: opts.stoppedBy,
  });
  threads.push(thread);
  thread.start();
  const deaths = () => lines.filter((l) => l.code === 'TEST_THREAD_DIED');
  return { thread, lines, messages, deaths };
}

/** Wait for a running thread that answers, then have it die with `how` ('exit <n>' or 'throw'). */
async function kill(thread: SupervisedThread<Control, Message>, how: string): Promise<void> {
  await until('a thread that answers', () => thread.request('echo').then(() => true, () => false));
  await expect(thread.request(how)).rejects.toMatchObject({ code: 'STORAGE_RESTARTING' });
}

describe('a supervised thread', () => {
  it("answers requests with rows or the thread's error, and passes on its log lines and messages", async () => {
    const { thread, lines, messages } = supervise();
    expect(await thread.request('echo', [1, 'a'])).toEqual([{ params: [1, 'a'] }]);
    await expect(thread.request('fail')).rejects.toMatchObject({ code: 'TEST_FAILED', message: 'failed on purpose' });
    expect(messages).toEqual([{ type: 'hello' }]);
    expect(lines).toContainEqual(expect.objectContaining({ component: 'test', started: true, msg: 'test thread started' }));
    expect(thread.inFlight).toBe(0);
  });

  it('fails a request in flight with STORAGE_RESTARTING when the thread dies, and starts another', async () => {
    // A back-off long enough that the read below lands while no thread runs.
    const { thread, deaths } = supervise({ backoff: { minMs: 300, maxMs: 300, healthyAfterMs: 60_000 } });
    await until('a thread that answers', () => thread.request('echo').then(() => true, () => false));
    const held = thread.request('hold');
    const dying = thread.request('exit 75');
    expect(thread.inFlight).toBe(2);
    await expect(held).rejects.toMatchObject({ code: 'STORAGE_RESTARTING', message: 'the test thread restarted while answering; retry the read' });
    await expect(dying).rejects.toMatchObject({ code: 'STORAGE_RESTARTING' });
    expect(thread.inFlight).toBe(0);
    expect(thread.running).toBe(false);
    await expect(thread.request('echo')).rejects.toMatchObject({ code: 'STORAGE_RESTARTING', message: 'the test thread is restarting; retry the read in a moment' });

    expect(thread.restarts).toBe(1);
    expect(thread.lastExit).toMatchObject({ code: 75 });
    expect(deaths()).toEqual([expect.objectContaining({ level: 50, exitCode: 75, reason: 'it stalled', restartInMs: 300, restarts: 1, msg: 'the test thread died' })]);
    await until('the restarted thread answers', () => thread.request('echo').then(() => true, () => false));
  });

  it('doubles the wait before each restart up to the maximum while the thread keeps dying young', async () => {
    const { thread, deaths } = supervise({ backoff: { minMs: 5, maxMs: 20, healthyAfterMs: 60_000 } });
    await kill(thread, 'exit 1');
    await kill(thread, 'exit 2');
    await kill(thread, 'throw');
    await kill(thread, 'exit 3');
    expect(deaths().map((l) => l.restartInMs)).toEqual([5, 10, 20, 20]);
    expect(deaths().map((l) => l.restarts)).toEqual([1, 2, 3, 4]);
    expect(thread.restarts).toBe(4);
    expect(thread.lastExit).toMatchObject({ code: 3 });
    // The uncaught error is the third death's: its message and stack are logged and kept.
    expect(deaths()[2]).toMatchObject({ exitCode: 1, err: { message: 'thrown on purpose' } });
  });

  it('waits the minimum again after a thread that ran past the healthy time', async () => {
    // Every thread here has run longer than 0 ms (starting one takes far more) before it dies.
    const { thread, deaths } = supervise({ backoff: { minMs: 5, maxMs: 20, healthyAfterMs: 0 } });
    await kill(thread, 'exit 1');
    await kill(thread, 'exit 1');
    await kill(thread, 'exit 1');
    expect(deaths().map((l) => l.restartInMs)).toEqual([5, 5, 5]);
    expect(thread.restarts).toBe(3);
  });

  it('takes an exit after end() as the stop asked for: not counted, not restarted', async () => {
    const { thread, deaths } = supervise();
    await until('a thread that answers', () => thread.request('echo').then(() => true, () => false));
    await thread.end({ type: 'stop' }, 2000);
    expect(thread.running).toBe(false);
    expect(thread.restarts).toBe(0);
    expect(deaths()).toEqual([]);
    await expect(thread.request('echo')).rejects.toMatchObject({ code: 'STORAGE_RESTARTING', message: 'storage is shutting down' });
  });

  it('counts an exit while stopping that stoppedBy refuses, and leaves the next start to its owner', async () => {
    const { thread, deaths } = supervise({ stoppedBy: (code) => code === 0 });
    await until('a thread that answers', () => thread.request('echo').then(() => true, () => false));
    thread.stop();
    await expect(thread.request('exit 4')).rejects.toMatchObject({ code: 'STORAGE_RESTARTING' });
    expect(thread.restarts).toBe(1);
    expect(deaths()).toEqual([expect.objectContaining({ exitCode: 4 })]);
    expect(thread.running).toBe(false);
    // The owner starts one to finish with, as Storage.close() does to drain; its clean end is no death.
    thread.start();
    await thread.end({ type: 'stop' }, 2000);
    expect(thread.restarts).toBe(1);
    expect(deaths()).toHaveLength(1);
  });
});
