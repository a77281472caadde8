/**
 * The layering rules of this tree, checked by test/layering.test.ts on every test run (and by
 * `npm run layering` for a readable report). dependency-cruiser reads the imports; these rules say
 * which are allowed.
 *
 *   src/core/   the shared layer: layouts, ring, protocols, IST calendar, errors, db handles.
 *               Imports nothing else of ours.
 *   workers/    the threads' code: imports only src/core/ (and its own files).
 *   src/        the main thread: may import src/core/, never workers/ (the thread-starting code
 *               names worker modules by URL, which is not an import).
 *   src/orders/ the order domain: checks, limits, broker, positions, store. The gateway calls it;
 *               it never imports the gateway, storage or the service wiring (it is handed what
 *               it needs: a store interface, a market view, push callbacks).
 * No import circles anywhere; the running service never imports a dev dependency or test code.
 */
const TEST = '(\\.test\\.ts$|^test/|^bench/)';

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'Import circles make load order matter and hide which module owns what.',
      from: {},
      to: { circular: true },
    },
    {
      name: 'workers-import-only-core',
      severity: 'error',
      comment: 'Worker threads stand on the shared layer only: move what they need from src/ into src/core/.',
      from: { path: '^workers/', pathNot: TEST },
      to: { path: '^src/', pathNot: '^src/core/' },
    },
    {
      name: 'core-stands-alone',
      severity: 'error',
      comment: 'src/core/ is what both sides share: it may not import the main thread or the workers.',
      from: { path: '^src/core/', pathNot: TEST },
      to: { path: '^(src|workers)/', pathNot: '^src/core/' },
    },
    {
      name: 'main-thread-not-into-workers',
      severity: 'error',
      comment: 'The main thread reaches worker code only by starting its thread (a module URL); shared definitions belong in src/core/.',
      from: { path: '^src/', pathNot: TEST },
      to: { path: '^workers/' },
    },
    {
      name: 'orders-below-the-gateway',
      severity: 'error',
      comment: 'The order domain is called by the gateway and handed its storage: it must not import src/gateway/, src/storage/ or the service wiring.',
      from: { path: '^src/orders/', pathNot: TEST },
      to: { path: '^src/(gateway/|storage/|service\\.ts$)' },
    },
    {
      name: 'service-not-to-test-code',
      severity: 'error',
      comment: 'Test support is not shipped: the running service must not import it.',
      from: { path: '^(src|workers)/', pathNot: TEST },
      to: { path: TEST },
    },
    {
      name: 'service-not-to-dev-dependencies',
      severity: 'error',
      comment: 'A production install (npm ci --omit=dev) lacks dev dependencies: declare it in "dependencies".',
      from: { path: '^(src|workers)/', pathNot: TEST },
      to: { dependencyTypes: ['npm-dev'] },
    },
    {
      name: 'not-to-unresolvable',
      severity: 'error',
      comment: 'An import that resolves to nothing fails at run time.',
      from: {},
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(node_modules|data|dist|test/fixtures)/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    combinedDependencies: false,
    // Resolve packages as Node does for ESM (package.json "exports" with the import condition).
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'node', 'default'], mainFields: ['module', 'main'] },
  },
};
