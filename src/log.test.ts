import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger, createProcessLogger } from './log.ts';

function sink() {
  const lines: string[] = [];
  return { lines, stream: new Writable({ write(chunk, _enc, cb) { lines.push(String(chunk)); cb(); } }) };
}

function capture() {
  const lines: string[] = [];
  const stream = new Writable({ write(chunk, _enc, cb) { lines.push(String(chunk)); cb(); } });
  return { lines, log: createLogger('info', 'test', stream) };
}

describe('log redaction', () => {
  it('prints [redacted] for API keys, secrets and access tokens at the top level and one level down', () => {
    const { lines, log } = capture();
    const secrets = ['S1-secret-value', 'S2-api-key-value', 'S3-access-token', 'S4-bearer', 'S5-api_key', 'S6-listed'];
    log.info({ secret: secrets[0], apiKey: secrets[1], accessToken: secrets[2], name: 'alice' }, 'top');
    log.info({ key: { name: 'bob', secret: secrets[0] }, req: { apiKey: secrets[1], headers: { authorization: `Bearer ${secrets[3]}` } } }, 'nested');
    log.info({ kite: { apiKey: secrets[4], accessToken: secrets[2] }, query: { api_key: secrets[4] } }, 'kite');
    log.info({ config: { apiKeys: [{ name: 'x', secret: secrets[5] }] } }, 'config');
    const out = lines.join('');
    for (const s of secrets) expect(out).not.toContain(s);
    expect(out).toContain('[redacted]');
    // Names stay: a redacted log line must still say whose key it was.
    expect(out).toContain('"name":"alice"');
    expect(out).toContain('"name":"bob"');
    const first = JSON.parse(lines[0]);
    expect(first).toMatchObject({ secret: '[redacted]', apiKey: '[redacted]', accessToken: '[redacted]' });
  });
});

describe('process logger format', () => {
  it('prints readable lines, still redacted, when a person reads the terminal', () => {
    const { lines, stream } = sink();
    const log = createProcessLogger('info', 'auto', true, stream);
    log.info({ apiKey: 'S-visible-nowhere', instruments: 671 }, 'service up');
    const out = lines.join('').replace(/\x1b\[[0-9;]*m/g, '');
    expect(out).toMatch(/INFO.*service up/);
    expect(out).toContain('instruments: 671');
    expect(out).not.toContain('S-visible-nowhere');
    expect(() => JSON.parse(out)).toThrow();
  });

  it('keeps JSON lines for machines: when stdout is not a terminal, or when LOG_FORMAT=json', () => {
    for (const [format, terminal] of [['auto', false], ['json', true]] as const) {
      const { lines, stream } = sink();
      createProcessLogger('info', format, terminal, stream).info({ n: 1 }, 'line');
      expect(JSON.parse(lines[0])).toMatchObject({ msg: 'line', n: 1, level: 30 });
    }
  });
});
