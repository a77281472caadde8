/**
 * A Lua script run in Redis by its SHA-1 (EVALSHA), sent whole (EVAL) only when the server does not
 * know it yet (NOSCRIPT: first use, or after a restart or SCRIPT FLUSH). Redis runs a script
 * atomically: no other client's command runs between its calls, which is what the shared order
 * limits (shared-limits.ts, shared-risk.ts) rely on across gateways.
 *
 * The client is the caller's (ioredis); nothing is defined on it, so one client serves every
 * script and the cache alike. A failure of Redis itself (connection, timeout) becomes
 * SharedStateUnavailable, whose message says what to check; a script's own error is a bug here and
 * is thrown as it is.
 */
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { SharedStateUnavailable } from './errors.ts';

export class LuaScript {
  private readonly sha: string;

  constructor(readonly name: string, private readonly source: string) {
    this.sha = createHash('sha1').update(source).digest('hex');
  }

  async run(redis: Redis, keys: readonly string[], args: readonly (string | number)[]): Promise<unknown> {
    try {
      try {
        return await redis.evalsha(this.sha, keys.length, ...keys, ...args);
      } catch (e) {
        if (!String((e as Error).message).startsWith('NOSCRIPT')) throw e;
        return await redis.eval(this.source, keys.length, ...keys, ...args);
      }
    } catch (e) {
      const message = String((e as Error).message);
      // ERR from inside the script (a Lua error, a wrong type): not Redis being away.
      if (/^ERR .*(user_script|script:)/.test(message) || message.startsWith('WRONGTYPE')) throw e;
      throw new SharedStateUnavailable('Redis', this.name, message);
    }
  }
}
