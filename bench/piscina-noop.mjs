// A piscina task that does nothing: bench/analytics.bench.ts times it for the pool's own floor,
// the main-thread cost of any task before the analytics add theirs.
export default function noop(task) {
  return task;
}
