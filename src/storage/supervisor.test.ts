import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { releaseLock, takeLock } from './supervisor.ts';

const dirs: string[] = [];
afterEach(() => { for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true }); });
function lockFile(): string {
  const d = mkdtempSync(join(tmpdir(), 'storage-lock-'));
  dirs.push(d);
  return join(d, 'storage.lock');
}

describe('the DATA_DIR lock (one process per spill and embedded database)', () => {
  it('refuses a second holder in this process, naming what to do', () => {
    const f = lockFile();
    takeLock(f);
    expect(() => takeLock(f)).toThrow(expect.objectContaining({ code: 'DATA_DIR_IN_USE' }));
    releaseLock(f);
    takeLock(f);
    releaseLock(f);
  });

  it('refuses a DATA_DIR held by another live process', () => {
    const f = lockFile();
    writeFileSync(f, String(process.ppid)); // a process that is certainly alive
    expect(() => takeLock(f)).toThrow(/in use by process/);
  });

  it('takes over a lock naming its own pid that it did not take (a container restarted as PID 1 after kill -9)', () => {
    const f = lockFile();
    writeFileSync(f, String(process.pid)); // left by an earlier life of this pid
    takeLock(f);
    expect(readFileSync(f, 'utf8')).toBe(String(process.pid));
    // Now it is this process's: a second storage on the same DATA_DIR is still refused.
    expect(() => takeLock(f)).toThrow(expect.objectContaining({ code: 'DATA_DIR_IN_USE' }));
    releaseLock(f);
  });

  it('takes over the lock of a process that is gone (kill -9)', () => {
    const f = lockFile();
    const gone = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
    writeFileSync(f, gone.stdout);
    takeLock(f);
    expect(readFileSync(f, 'utf8')).toBe(String(process.pid));
    releaseLock(f);
  });
});
