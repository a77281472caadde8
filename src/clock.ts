/** Microseconds since the epoch, with sub-millisecond resolution (performance clock). */
export function nowMicros(): number {
  return (performance.timeOrigin + performance.now()) * 1000;
}
