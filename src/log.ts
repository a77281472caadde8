/**
 * The process logger. pino, with secrets redacted by path, prepared once at start-up: Kite's
 * access token, our API keys and other secrets never reach a log line when they sit at the top of
 * the logged object or one level down (`{ secret }`, `{ kite: { accessToken } }`). pino's paths
 * have no recursive wildcard (`**`), so deeper secrets must not be logged as objects at all.
 */
import pino, { type Logger } from 'pino';
import pretty from 'pino-pretty';
import type { LogFormat, LogLevel } from './config.ts';

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

/**
 * The service's own logger on stdout: JSON lines, or pino-pretty's readable lines when `format` is
 * `pretty`, or `auto` and stdout is a terminal (a person started it). pino-pretty runs as a
 * synchronous stream in this thread rather than as a transport thread: a line is on the terminal
 * before a fatal error's process.exit, and no extra thread starts for a person's convenience.
 */
export function createProcessLogger(
  level: LogLevel, format: LogFormat, isTerminal = process.stdout.isTTY === true, destination?: NodeJS.WritableStream,
): Logger {
  const readable = format === 'pretty' || (format === 'auto' && isTerminal);
  if (!readable) return createLogger(level, 'nifty50', destination as pino.DestinationStream | undefined);
  const stream = pretty({
    colorize: isTerminal, sync: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname', ...(destination ? { destination } : {}),
  });
  return createLogger(level, 'nifty50', stream);
}

/** A logger that prints nothing: for tests and tools that pass none. */
export const silentLogger: Logger = pino({ level: 'silent' });
