/**
 * The Dockerfile without a Docker daemon (none runs here, so the image is never built in CI):
 * dockerfile-utils' validator (the parser and checks behind VS Code's Dockerfile support; hadolint
 * is packaged for PyPI only) must report nothing, and the invariants issue #15 names are read off
 * the instructions: stages, user, health check, stop signal, start command, no secret, and a
 * dashboard built from the same sources the runtime keeps, so `npm start` finds it fresh.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { validate } from 'dockerfile-utils';
import { describe, expect, it } from 'vitest';
import { unreadVariables } from './config-env.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
const read = (rel: string) => readFileSync(`${root}${rel}`, 'utf8');
const dockerfile = read('Dockerfile');

interface Instruction {
  keyword: string;
  args: string;
  line: number;
}

/** Logical instructions: continuation lines joined, comments and blank lines dropped. */
function instructions(text: string): Instruction[] {
  const out: Instruction[] = [];
  let pending = '';
  let startLine = 0;
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (pending === '' && (line === '' || line.startsWith('#'))) return;
    if (pending !== '' && line.startsWith('#')) return; // a comment inside a continuation
    if (pending === '') startLine = i + 1;
    if (line.endsWith('\\')) {
      pending += `${line.slice(0, -1)} `;
      return;
    }
    const full = pending + line;
    pending = '';
    const m = /^(\S+)\s*(.*)$/s.exec(full)!;
    out.push({ keyword: m[1].toUpperCase(), args: m[2].trim(), line: startLine });
  });
  return out;
}

interface Stage {
  name: string | null;
  image: string;
  body: Instruction[];
}

const all = instructions(dockerfile);
const globalArgs = new Map<string, string>();
const stages: Stage[] = [];
for (const ins of all) {
  if (ins.keyword === 'FROM') {
    const m = /^(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.args)!;
    const image = m[1].replace(/\$\{(\w+)\}|\$(\w+)/g, (_, a: string, b: string) => globalArgs.get(a ?? b) ?? '');
    stages.push({ name: m[2] ?? null, image, body: [] });
  } else if (stages.length === 0 && ins.keyword === 'ARG') {
    const [k, v] = ins.args.split('=');
    globalArgs.set(k, v ?? '');
  } else if (stages.length > 0) {
    stages[stages.length - 1].body.push(ins);
  }
}
const runtime = stages[stages.length - 1];
const stage = (name: string) => stages.find((s) => s.name === name);
/** A stage's instructions, and those of the stages it is built FROM. */
function lineage(s: Stage): Instruction[] {
  const parent = stage(s.image);
  return [...(parent ? lineage(parent) : []), ...s.body];
}
const runs = (s: Stage) => lineage(s).filter((i) => i.keyword === 'RUN').map((i) => i.args);
/** `COPY --from=NAME src... dest` of the runtime stage, as [from, source paths]. */
const copiesFrom = runtime.body
  .filter((i) => i.keyword === 'COPY')
  .map((i) => {
    const words = i.args.split(/\s+/);
    const from = words.find((w) => w.startsWith('--from='))?.slice('--from='.length) ?? null;
    const paths = words.filter((w) => !w.startsWith('--'));
    return { from, sources: paths.slice(0, -1) };
  });

describe('Dockerfile', () => {
  it("passes dockerfile-utils' validator with no diagnostic at all", () => {
    const found = validate(dockerfile).map((d) => `line ${d.range.start.line + 1}: ${d.message}`);
    expect(found).toEqual([]);
  });

  it('is checked by a validator that does report a broken Dockerfile', () => {
    const broken = 'FROM node:20-bookworm-slim\nHEALTHCHECK --interval=soon CMD true\nEXPOSE port\nUSER\n';
    expect(validate(broken).map((d) => d.range.start.line + 1)).toEqual([2, 3, 4]);
  });

  it('builds in stages and runs on a slim Node 20 image with production dependencies only', () => {
    expect(stages.length).toBeGreaterThanOrEqual(3);
    expect(runtime.image).toMatch(/^node:20(\.\d+)*-bookworm-slim$/);
    // The build stage installs everything (npm ci without --omit) and checks the tree.
    const build = stage('build')!;
    expect(runs(build).some((r) => /\bnpm ci\b/.test(r) && !/--omit=dev/.test(r))).toBe(true);
    expect(runs(build).some((r) => /npm run typecheck/.test(r))).toBe(true);
    // node_modules comes from a stage that installed production dependencies only.
    const nm = copiesFrom.find((c) => c.sources.some((s) => /\/node_modules$/.test(s)));
    expect(nm?.from).toBeTruthy();
    expect(runs(stage(nm!.from!)!).some((r) => /\bnpm ci\b.*--omit=dev/.test(r))).toBe(true);
    // Nothing is installed in the runtime stage itself.
    expect(runtime.body.filter((i) => i.keyword === 'RUN' && /\bnpm\b/.test(i.args))).toEqual([]);
  });

  it("installs with the npm major this checkout's lock file and install-script policy are made with", () => {
    const major = execFileSync('npm', ['--version'], { encoding: 'utf8' }).trim().split('.')[0];
    const pinned = /npm@(\d+)[.\d]*/.exec(runs(stage('deps')!).join('\n'))?.[1];
    expect(pinned).toBe(major);
    expect(/npm@(\d+)/.exec(runs(stage('build')!).join('\n'))?.[1]).toBe(major);
  });

  it('runs as a numeric non-root user, so Kubernetes can verify runAsNonRoot', () => {
    const users = runtime.body.filter((i) => i.keyword === 'USER').map((i) => i.args);
    expect(users.length).toBeGreaterThan(0);
    const last = users[users.length - 1];
    expect(last).toMatch(/^\d+(:\d+)?$/);
    expect(Number(last.split(':')[0])).toBeGreaterThan(0);
    // No instruction after USER switches back to root.
    const after = runtime.body.slice(runtime.body.findIndex((i) => i.keyword === 'USER'));
    expect(after.filter((i) => i.keyword === 'RUN')).toEqual([]);
  });

  it('checks /health with node itself (the slim image has no curl) and stops with SIGTERM', () => {
    const hc = runtime.body.filter((i) => i.keyword === 'HEALTHCHECK');
    expect(hc).toHaveLength(1);
    expect(hc[0].args).toMatch(/CMD\s+\["node"/);
    expect(hc[0].args).toContain('/health');
    expect(hc[0].args).not.toMatch(/curl|wget/);
    expect(runtime.body.filter((i) => i.keyword === 'STOPSIGNAL').map((i) => i.args)).toEqual(['SIGTERM']);
  });

  it("starts as the README's npm start does, with node as PID 1 (exec form, no npm in front)", () => {
    const start = (JSON.parse(read('package.json')) as { scripts: { start: string } }).scripts.start.split(/\s+/);
    const cmd = runtime.body.filter((i) => i.keyword === 'CMD');
    expect(cmd).toHaveLength(1);
    expect(JSON.parse(cmd[0].args)).toEqual(start);
    expect(runtime.body.filter((i) => i.keyword === 'ENTRYPOINT')).toEqual([]);
    expect(read('README.md')).toContain('npm start');
  });

  it('bakes in no secret, and sets only variables src/config.ts reads', () => {
    const credential = /KEY|TOKEN|SECRET|PASSW|CREDENTIAL|DATABASE_URL|REDIS_URL|NATS_URL/i;
    const declared = all.filter((i) => i.keyword === 'ENV' || i.keyword === 'ARG');
    const names = declared.flatMap((i) => [...i.args.matchAll(/(?:^|\s)([A-Za-z_][A-Za-z0-9_]*)(?:=|\s|$)/g)].map((m) => m[1]));
    expect(names.filter((n) => credential.test(n))).toEqual([]);
    expect(dockerfile).not.toMatch(/:\/\/[^\s/:@]+:[^\s/@]+@/); // no user:password@ in any URL
    const env: Record<string, string> = {};
    for (const i of runtime.body.filter((x) => x.keyword === 'ENV')) {
      for (const m of i.args.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=(\S+)/g)) env[m[1]] = m[2];
    }
    expect(Object.keys(env).length).toBeGreaterThan(0);
    expect(unreadVariables(Object.keys(env), env)).toEqual([]);
  });

  it('ships the dashboard built once, beside the very sources its build hash covers', () => {
    const build = stage('build')!;
    expect(runs(build).some((r) => /ensureWebBuild/.test(r) && /\.build-hash/.test(r))).toBe(true);
    // Every input of the hash (src/web-build.ts INPUTS) is copied from that build stage, so the
    // hash npm start computes in the container is the one written beside web/dist.
    const inputs = JSON.parse(/const INPUTS = (\[[^\]]*\])/.exec(read('src/web-build.ts'))![1].replace(/'/g, '"')) as string[];
    expect(inputs.length).toBeGreaterThan(0);
    const fromBuild = copiesFrom.filter((c) => c.from === 'build').flatMap((c) => c.sources.map((s) => s.replace(/^\/app\//, '')));
    for (const input of [...inputs, 'src', 'workers', 'sql', 'package.json', 'tsconfig.json']) {
      expect(fromBuild.some((s) => input === s || input.startsWith(`${s}/`)), `${input} copied from the build stage`).toBe(true);
    }
  });

  it('.dockerignore keeps out installed and generated trees, test output, local data and secrets', () => {
    const ignored = read('.dockerignore').split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
    for (const p of ['node_modules', '.git', 'test-artifacts', 'web/dist', 'data', '.vitest-report.json', '**/.env', '**/*.pem']) {
      expect(ignored, p).toContain(p);
    }
    // What the build stage's checks read must still be sent.
    for (const p of ['src', 'workers', 'test', 'bench', 'web', 'sql', 'package-lock.json']) {
      expect(ignored.some((l) => l === p || l === `${p}/` || l === `/${p}`), `${p} is sent`).toBe(false);
    }
  });
});
