/**
 * Where a request carries its credentials. Pure string functions for the gateway; none of them
 * checks a key (KeyStore.verify does), and none logs what it finds.
 *
 * - `Authorization: Bearer <key>`: our REST API and WebSocket clients that can set headers.
 * - `?key=<key>`: browsers, whose WebSocket API cannot set headers. Query strings end up in proxy
 *   and access logs, so prefer the header wherever the client allows it.
 * - `Authorization: token api_key:access_token`: what KiteConnect sends; Kite code pointed at our
 *   `/kite` endpoints carries one of our keys as its access token.
 */

/** The key in `Authorization: Bearer <key>` (scheme case-insensitive, RFC 7235), else null. */
export function parseBearer(header: string | undefined | null): string | null {
  if (typeof header !== 'string') return null;
  const m = /^[ \t]*bearer[ \t]+([^\s]+)[ \t]*$/i.exec(header);
  return m === null ? null : m[1];
}

/** `Authorization: token api_key:access_token` → both parts; null if it is not that form. */
export function parseKiteAuth(header: string | undefined | null): { apiKey: string; accessToken: string } | null {
  if (typeof header !== 'string') return null;
  const m = /^[ \t]*token[ \t]+([^\s:]+):([^\s]+)[ \t]*$/i.exec(header);
  return m === null ? null : { apiKey: m[1], accessToken: m[2] };
}

/**
 * The value of parameter `name` in a query string (with or without its leading '?', as
 * uWebSockets.js's `getQuery()` gives it), percent-decoded; the first one if repeated; null if
 * absent or empty.
 */
export function keyFromQuery(query: string | undefined | null, name = 'key'): string | null {
  if (typeof query !== 'string' || query === '') return null;
  const v = new URLSearchParams(query.startsWith('?') ? query.slice(1) : query).get(name);
  return v === null || v === '' ? null : v;
}
