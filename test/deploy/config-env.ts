/**
 * Which environment variables the service reads, asked of src/config.ts itself: `loadConfig` runs
 * on a recording view of the environment given, so a variable renamed or dropped there is one the
 * Dockerfile and the manifests can no longer set without a test failing. The environment given is
 * the one a container would have, so reads that depend on another setting's value happen as they
 * would there, and a value the config refuses fails here with the config's own message.
 */
import { loadConfig } from '../../src/config.ts';

export type Env = Record<string, string | undefined>;

/** The names `loadConfig` read while loading `env` (it throws ConfigError on a bad value). */
export function configReads(env: Env): Set<string> {
  const read = new Set<string>();
  const recording = new Proxy(env, {
    get(target, name) {
      if (typeof name === 'string') read.add(name);
      return Reflect.get(target, name);
    },
    has(target, name) {
      if (typeof name === 'string') read.add(name);
      return Reflect.has(target, name);
    },
  });
  loadConfig(recording);
  return read;
}

/** Names in `names` that src/config.ts does not read with `env`. */
export function unreadVariables(names: Iterable<string>, env: Env): string[] {
  const read = configReads(env);
  return [...names].filter((n) => !read.has(n)).sort();
}
