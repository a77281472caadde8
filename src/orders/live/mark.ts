/**
 * Our mark on a live order: Kite's `tag` carries our order id, so an order whose placement got no
 * answer can be found in Kite's order book (and in its ticker updates and postbacks) before anything
 * is sent again. "Never twice" rests on it.
 *
 * | form            | example                | why                                                   |
 * |-----------------|------------------------|-------------------------------------------------------|
 * | 'n5' + base36   | n5h0z3b7q2k9 (12 chars)| Kite's tag is alphanumeric, at most 20 characters;    |
 * |                 |                        | our ids are µs-time numbers (16 digits, 10-11 in      |
 * |                 |                        | base 36), so the mark fits with room to spare         |
 *
 * The trade-off: Kite has one tag field and it is ours. The caller's own `tag` stays in our record
 * (the order service keeps and shows it on /kite and /api), but Kite's own console, its order book
 * and its contract notes show our mark instead. The prefix keeps our marks apart from tags other
 * apps of the same Kite user set: a tag that is not a mark of ours names no order of ours.
 */
import type { Order } from '../model.ts';

export const MARK_PREFIX = 'n5';
/** Kite's limit on a tag's length. */
export const KITE_TAG_MAX = 20;
const DIGITS = '0123456789abcdefghijklmnopqrstuvwxyz';
const MARK_BODY = /^[0-9a-z]{1,18}$/;

/** The mark of an order: Kite's `tag` for it. Throws a RangeError for an id that is not a whole number. */
export function markOf(order: Pick<Order, 'id'>): string {
  if (!/^\d{1,27}$/.test(order.id)) throw new RangeError(`markOf: order id "${order.id.slice(0, 40)}" is not a whole number; live orders need the service's numeric ids`);
  return MARK_PREFIX + BigInt(order.id).toString(36);
}

/** Our order id a tag carries, or null when the tag is not a mark of ours. */
export function orderIdOfMark(tag: unknown): string | null {
  if (typeof tag !== 'string' || tag.length > KITE_TAG_MAX || !tag.startsWith(MARK_PREFIX)) return null;
  const body = tag.slice(MARK_PREFIX.length);
  if (!MARK_BODY.test(body)) return null;
  let v = 0n;
  for (let i = 0; i < body.length; i++) v = v * 36n + BigInt(DIGITS.indexOf(body[i]));
  return v.toString();
}

/** Whether a Kite order row carries `mark` (its `tag`, or one of its `tags`). */
export function rowHasMark(row: Record<string, unknown>, mark: string): boolean {
  if (row.tag === mark) return true;
  const tags = row.tags;
  return Array.isArray(tags) && tags.includes(mark);
}
