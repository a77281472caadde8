import { OrderRejection } from '../../src/orders/errors.ts';

/** The OrderRejection `fn` throws; fails the test when it throws anything else or nothing. */
export function refusal(fn: () => unknown): OrderRejection {
  try {
    fn();
  } catch (e) {
    if (e instanceof OrderRejection) return e;
    throw e;
  }
  throw new Error('expected an OrderRejection, nothing was thrown');
}
