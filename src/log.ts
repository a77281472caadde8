/**
 * The process logger. pino, with secrets redacted by path, prepared once at start-up: Kite's
 * access token, our API keys and other secrets never reach a log line when they sit at the top of
 * the logged object or one level down (`{ secret }`, `{ kite: { accessToken } }`). pino's paths
 * have no recursive wildcard (`**`), so deeper secrets must not be logged as objects at all.
 */
import pino, { type Logger } from 'pino';
import type { LogLevel } from './config.ts';

export type { Logger };

export const REDACT_PATHS = [
  'accessToken',
  'access_token',
  '*.accessToken',
  '*.access_token',
  'kite.accessToken',
  'config.kite.accessToken',
  'apiSecret',
  '*.apiSecret',
  'secret',
  '*.secret',
  'authorization',
  '*.authorization',
  'headers.authorization',
  '*.headers.authorization',
  // Our API keys (src/auth/keys.ts): a presented key, a created one, or the configured list.
  'apiKey',
  '*.apiKey',
  'api_key',
  '*.api_key',
  'apiKeys',
  '*.apiKeys',
  'password',
  '*.password',
];

export function createLogger(level: LogLevel, name = 'nifty50', stream?: pino.DestinationStream): Logger {
  const opts = { name, level, redact: { paths: REDACT_PATHS, censor: '[redacted]' } };
  return stream ? pino(opts, stream) : pino(opts);
}

/** A logger that prints nothing: for tests and tools that pass none. */
export const silentLogger: Logger = pino({ level: 'silent' });
