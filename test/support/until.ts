/**
 * Waiting in tests: for a state or a message, never for a length of time.
 *
 * until() polls a condition and resolves with its first truthy value. Polling is fine: it waits
 * for a state, and how often it looks only sets how soon the test notices (every 5 ms at first,
 * backing off to 50 ms, so a long wait on a database query or a health page does not load the
 * machine). The timeout bounds a failure only; a test never passes by reaching it. A failure names
 * what was awaited and the last value the condition gave, and a condition that throws fails the
 * wait at once.
 *
 * To assert that something did NOT arrive, do not wait a while and look: wait with until() for a
 * marker that must arrive after it (a later frame or reply on the same connection, a record later
 * in the same ring), then look. For one event of an EventEmitter, `once` from node:events.
 */
import { inspect } from 'node:util';

export type Truthy<T> = Exclude<T, false | 0 | 0n | '' | null | undefined>;

const FIRST_POLL_MS = 5;
const MAX_POLL_MS = 50;

/**
 * Resolves with the first truthy value of `cond`, polled; rejects after `timeoutMs`.
 * `what` names the awaited state in the failure; as a function it is asked at the failure, for a
 * message that describes the state then.
 */
export async function until<T>(what: string | (() => string), cond: () => T | Promise<T>, timeoutMs = 20_000): Promise<Truthy<T>> {
  const t0 = Date.now();
  let pollMs = FIRST_POLL_MS;
  for (;;) {
    const v = await cond();
    if (v) return v as Truthy<T>;
    if (Date.now() - t0 > timeoutMs) {
      const name = typeof what === 'function' ? what() : what;
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${name}; the condition last gave ${inspect(v, { depth: 2, breakLength: Infinity })}`);
    }
    await new Promise((r) => setTimeout(r, pollMs));
    pollMs = Math.min(MAX_POLL_MS, pollMs * 2);
  }
}
