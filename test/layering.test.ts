/**
 * The tree's layering as a rule checked on every run: the rules are .dependency-cruiser.cjs's
 * (src/core/ the shared layer, workers/ on src/core/ only, no circles, no dev dependency or test
 * code in the running service); `npm run layering` prints the same report for a person.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { cruise, type ICruiseOptions, type IViolation } from 'dependency-cruiser';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));
const config = createRequire(import.meta.url)('../.dependency-cruiser.cjs') as { forbidden: unknown[]; options: ICruiseOptions };

async function violations(dirs: string[], baseDir: string): Promise<IViolation[]> {
  const { tsConfig: _ts, ...options } = config.options as ICruiseOptions & { tsConfig?: unknown };
  const result = await cruise(dirs, { ...options, baseDir, validate: true, ruleSet: { forbidden: config.forbidden } as ICruiseOptions['ruleSet'] });
  const out = result.output as { summary: { violations: IViolation[] } };
  return out.summary.violations;
}

const show = (vs: IViolation[]) => vs.map((v) => `${v.rule.name}: ${v.from} -> ${v.to}${v.cycle ? ` (circle ${v.cycle.map((c) => c.name).join(' -> ')})` : ''}`);

describe('layering', () => {
  it('holds in the tree: workers/ stands on src/core/ only, src/core/ on nothing else, no circles', async () => {
    expect(show(await violations(['src', 'workers', 'test', 'bench'], root))).toEqual([]);
  });

  it('catches each kind of break (a small tree that breaks them on purpose)', async () => {
    const names = new Set((await violations(['src', 'workers'], `${root}test/fixtures/layering`)).map((v) => v.rule.name));
    expect([...names].sort()).toEqual(['core-stands-alone', 'main-thread-not-into-workers', 'no-circular', 'orders-below-the-gateway', 'workers-import-only-core']);
  });
});
