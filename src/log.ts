/**
 * The process logger. pino, with secrets redacted by path, prepared once at start-up: Kite's
 * access token and API secrets never reach a log line, whatever object carries them.
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
];

export function createLogger(level: LogLevel, name = 'nifty50'): Logger {
  return pino({ name, level, redact: { paths: REDACT_PATHS, censor: '[redacted]' } });
}

/** A logger that prints nothing: for tests and tools that pass none. */
export const silentLogger: Logger = pino({ level: 'silent' });
