/**
 * The one uWebSockets.js app on PORT. This issue serves liveness; the live feeds and REST mount
 * on the same app later.
 */
import { uws } from '../uws.ts';
import { AppError } from '../core/errors.ts';

import type { HttpResponse, TemplatedApp } from 'uWebSockets.js';

export interface GatewayOptions {
  host: string;
  port: number;
  /** Liveness document for GET /health. */
  health: () => Record<string, unknown>;
  /** Mounts the other routes (feeds, REST) before the app listens. */
  routes?: (app: TemplatedApp) => void;
}

export interface Gateway {
  readonly app: TemplatedApp;
  readonly port: number;
  close(): void;
}

export function sendJson(res: HttpResponse, status: string, body: unknown): void {
  res.cork(() => {
    res.writeStatus(status).writeHeader('Content-Type', 'application/json').end(JSON.stringify(body));
  });
}

export function startGateway(opts: GatewayOptions): Promise<Gateway> {
  const app = uws.App();
  app.get('/health', (res) => {
    sendJson(res, '200 OK', { status: 'ok', ...opts.health() });
  });
  opts.routes?.(app);
  app.any('/*', (res, req) => {
    sendJson(res, '404 Not Found', { error: 'not_found', message: `no route ${req.getMethod().toUpperCase()} ${req.getUrl()}` });
  });
  return new Promise((resolve, reject) => {
    app.listen(opts.host, opts.port, (token) => {
      if (!token) {
        reject(new AppError('PORT_IN_USE', `could not listen on ${opts.host}:${opts.port}: the port is taken or the address is not local. Set PORT (or HOST) to a free one.`, { host: opts.host, port: opts.port }));
        return;
      }
      const port = uws.us_socket_local_port(token);
      resolve({
        app,
        port,
        close: () => {
          uws.us_listen_socket_close(token);
        },
      });
    });
  });
}
