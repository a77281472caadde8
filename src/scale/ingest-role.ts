/**
 * ROLE=ingest start-up: stand by until this process holds the ingest lease (src/scale/lease.ts),
 * then the caller starts the service. Of the ingest processes exactly one owns the Kite
 * connections and the writer; the others wait here, answering the probes, and the first to get the
 * lease after the owner dies takes over (within the lease's retry interval, 500 ms).
 *
 * While standing by, a small HTTP server on PORT answers what the cluster asks of a live process:
 * `/health` and `/ready` answer 200 with `{ role: 'ingest', lease: 'standby', owner }`. Ready,
 * because standing by is this pod's job and nothing routes client traffic to an ingest; a 503
 * would only hide the standby from `kubectl get pods` as if it were broken. Everything else is 503
 * with a body saying this process is the standby and who owns the lease. The server closes before
 * the service binds the same port.
 *
 * An owner that loses the lease (its database session cut, a check unanswered) exits at once with
 * EXIT_LEASE_LOST: the next owner is taking the Kite connections, and two owners would exceed
 * Kite's three connections per key and store ticks twice. Its supervisor restarts it, as a standby.
 */
import { createServer, type Server } from 'node:http';
import type { Config } from '../config.ts';
import type { Logger } from '../log.ts';
import { IngestLease, defaultHolder, type LeaseGrant } from './lease.ts';

/** The exit code of an ingest that lost its lease: restart it and it stands by. */
export const EXIT_LEASE_LOST = 3;

/** Processes contend for the lease only with those on the same Redis prefix: one deployment, one owner. */
export function leaseName(config: Pick<Config, 'redisPrefix'>): string {
  return `nifty50-ingest:${config.redisPrefix}`;
}

export interface HeldLease {
  readonly lease: IngestLease;
  readonly grant: LeaseGrant;
}

/**
 * Stand by (answering probes on config.port) until the lease is ours. `onLost` runs when an owner
 * loses it; by default the process exits with EXIT_LEASE_LOST.
 */
export async function takeIngestLease(
  config: Config,
  log: Logger,
  onLost: (err: Error) => void = () => process.exit(EXIT_LEASE_LOST),
): Promise<HeldLease> {
  const lease = new IngestLease({ url: config.databaseUrl!, holder: defaultHolder(), name: leaseName(config), log });
  lease.on('lost', (err: Error) => {
    log.fatal({ lease: lease.status().name, err: err.message }, 'ingest lease lost: stopping now so that the new owner alone holds the Kite connections');
    onLost(err);
  });
  const server = await standbyServer(config, lease, log);
  try {
    const grant = await lease.acquire();
    return { lease, grant };
  } catch (e) {
    await lease.release().catch(() => {});
    throw e;
  } finally {
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }
}

function standbyServer(config: Config, lease: IngestLease, log: Logger): Promise<Server> {
  const server = createServer((req, res) => {
    const s = lease.status();
    const body = {
      role: 'ingest',
      lease: s.state === 'standby' ? 'standby' : s.state,
      holder: s.holder,
      owner: s.owner ? { holder: s.owner.holder, token: s.owner.token, since: s.owner.acquiredAt } : null,
    };
    const path = (req.url ?? '/').split('?')[0];
    const ok = path === '/health' || path === '/ready';
    res.writeHead(ok ? 200 : 503, { 'content-type': 'application/json', connection: 'close' });
    res.end(JSON.stringify(ok ? body : { ...body, error: 'this ingest is the standby: the owner serves this; it takes over when the owner stops' }));
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, config.host, () => {
      log.info({ port: config.port, lease: lease.status().name }, 'ingest standing by for the lease; /health answers meanwhile');
      resolve(server);
    });
  });
}
