/**
 * The Kubernetes manifests as a cluster would receive them: each overlay built by kustomize
 * (`kubectl kustomize`, offline: kubectl's own kustomize v5), parsed, and held to the invariants
 * of issue #15: every container probed, sized and non-root with a pinned image; each workload's
 * ROLE; every variable set is one src/config.ts reads (asked of loadConfig itself, so a renamed
 * variable fails here) with values it accepts; references (Secrets, ConfigMaps, Services, ports,
 * selectors) that resolve; only the gateways reachable from outside; the dashboard's series real;
 * and every object valid against its schema (kubernetes-models' validate()).
 *
 * kubectl is not a dev dependency: .ci/run installs it when missing, and this test fails, not
 * skips, when it is not there.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { unreadVariables, type Env } from './config-env.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
const read = (rel: string) => readFileSync(`${root}${rel}`, 'utf8');
const version = (JSON.parse(read('package.json')) as { version: string }).version;

/* eslint-disable @typescript-eslint/no-explicit-any -- manifests are untyped YAML */
type Obj = Record<string, any>;

function kubectl(args: string[]): string {
  try {
    return execFileSync('kubectl', args, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000 });
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stderr?: string };
    if (err.code === 'ENOENT') {
      throw new Error('kubectl is not installed: the manifests are built with `kubectl kustomize`. .ci/run installs it when missing (bash .ci/run); or install kubectl 1.27 or later (kustomize v5) by hand.');
    }
    throw new Error(`kubectl ${args.join(' ')} failed: ${err.stderr ?? err.message}`);
  }
}

/** Kinds from CRDs an overlay may use, whose schemas the cluster must have (see README "Deploy"). */
const CUSTOM_KINDS = new Set(['ServiceMonitor', 'PrometheusRule', 'BackendConfig', 'FrontendConfig']);
/** Secrets an overlay references but does not contain: created out of band (README "Deploy") or by cert-manager. */
const EXTERNAL_SECRETS: Record<string, string[]> = {
  dev: ['nifty50-tls'],
  prod: ['nifty50-secrets', 'nifty50-metrics-key', 'nifty50-tls'],
};
const OVERLAYS = ['dev', 'prod'] as const;
type Overlay = (typeof OVERLAYS)[number];

/**
 * Each overlay built once, on first use. Every test asks for it, so without a usable kubectl each
 * test fails with the reason (a failing beforeAll would leave them counted as skipped).
 */
const built = new Map<Overlay, Obj[] | Error>();
function build(overlay: Overlay): Obj[] {
  if (!built.has(overlay)) {
    try {
      const v = kubectl(['version', '--client']);
      const kustomize = /Kustomize Version:\s*v(\d+)/.exec(v)?.[1];
      if (kustomize === undefined || Number(kustomize) < 5) {
        throw new Error(`kubectl's kustomize is v${kustomize ?? '?'} (${v.trim().split('\n')[0]}); these overlays need kustomize v5 (kubectl 1.27 or later). Debian 12's kubernetes-client is 1.20 and too old: see .ci/run.`);
      }
      built.set(overlay, parseAllDocuments(kubectl(['kustomize', `k8s/overlays/${overlay}`])).map((d) => d.toJS() as Obj).filter((d) => d !== null));
    } catch (e) {
      built.set(overlay, e as Error);
    }
  }
  const b = built.get(overlay)!;
  if (b instanceof Error) throw b;
  return b;
}

/**
 * The model class of an object's apiVersion and kind: kubernetes-models for Kubernetes' own
 * groups, the Prometheus Operator's and GKE's model packages for their CRDs. Each class's
 * validate() checks the object against the OpenAPI schema of that version (types, required
 * fields, enums, unknown fields where the schema closes them).
 */
const MODEL_MODULES: Record<string, () => Promise<Record<string, unknown>>> = {
  v1: () => import('kubernetes-models/v1'),
  'apps/v1': () => import('kubernetes-models/apps/v1'),
  'autoscaling/v2': () => import('kubernetes-models/autoscaling/v2'),
  'networking.k8s.io/v1': () => import('kubernetes-models/networking.k8s.io/v1'),
  'policy/v1': () => import('kubernetes-models/policy/v1'),
  'monitoring.coreos.com/v1': () => import('@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1'),
  'cloud.google.com/v1': () => import('@kubernetes-models/gke/cloud.google.com/v1'),
  'networking.gke.io/v1beta1': () => import('@kubernetes-models/gke/networking.gke.io/v1beta1'),
};
type Model = new (o: Obj) => { validate(): void };
/**
 * kustomize's secretGenerator wraps long base64 values at 76 columns; the API server's base64
 * decoder (Go's encoding/base64) skips the line breaks, the schema's "byte" format does not.
 */
function unwrapSecretData(d: Obj): Obj {
  if (d.kind !== 'Secret' || d.data === undefined) return d;
  return { ...d, data: Object.fromEntries(Object.entries(d.data as Record<string, string>).map(([k, v]) => [k, v.replace(/\s+/g, '')])) };
}
async function modelOf(apiVersion: string, kind: string): Promise<Model | null> {
  const load = MODEL_MODULES[apiVersion];
  if (load === undefined) return null;
  return ((await load())[kind] as Model | undefined) ?? null;
}

const ofKind = (docs: Obj[], kind: string) => docs.filter((d) => d.kind === kind);
const workloads = (docs: Obj[]) => docs.filter((d) => ['Deployment', 'StatefulSet', 'DaemonSet'].includes(d.kind));
const podSpec = (w: Obj): Obj => w.spec.template.spec;
const podLabels = (w: Obj): Obj => w.spec.template.metadata?.labels ?? {};
const isOurs = (c: Obj) => /(^|\/)nifty50(:|@|$)/.test(c.image);
const matches = (selector: Obj | undefined, labels: Obj) =>
  selector !== undefined && Object.entries(selector).every(([k, v]) => labels[k] === v);
const named = (docs: Obj[], kind: string, name: string) => docs.find((d) => d.kind === kind && d.metadata.name === name);
const containersOf = (docs: Obj[]) =>
  workloads(docs).flatMap((w) => [...(podSpec(w).initContainers ?? []), ...podSpec(w).containers].map((c: Obj) => ({ w, c })));

/**
 * Stand-ins for the values of required Secrets, which are not committed: the config checks their
 * form and requires some of them together with ROLE. Optional secret references stay unset, as
 * when the Secret lacks the key.
 */
const SECRET_STAND_INS: Env = {
  DATABASE_URL: 'postgres://nifty@db.example:5432/nifty',
  REDIS_URL: 'redis://redis.example:6379/0',
  API_KEYS: 'ops:0123456789abcdef0123',
};

/** The environment a container starts with: its ConfigMaps' data, then its own literal values; secrets stood in for. */
function containerEnv(docs: Obj[], c: Obj): { env: Env; names: string[] } {
  const env: Env = {};
  const names: string[] = [];
  for (const from of c.envFrom ?? []) {
    if (from.configMapRef) {
      const cm = named(docs, 'ConfigMap', from.configMapRef.name);
      for (const [k, v] of Object.entries(cm?.data ?? {})) {
        env[k] = String(v);
        names.push(k);
      }
    }
  }
  for (const e of c.env ?? []) {
    names.push(e.name);
    env[e.name] = e.value !== undefined
      ? String(e.value)
      : e.valueFrom?.secretKeyRef && !e.valueFrom.secretKeyRef.optional ? SECRET_STAND_INS[e.name] : undefined;
  }
  return { env, names: [...new Set(names)] };
}

/** The seconds src/main.ts gives its drain before it exits regardless. */
const drainBoundS = Number(/shutdown took longer than (\d+) s/.exec(read('src/main.ts'))![1]);

describe.each(OVERLAYS)('k8s/overlays/%s', (overlay) => {
  const docs = () => build(overlay);

  it('builds with kustomize into the objects the design draws', () => {
    const kinds = new Set(docs().map((d) => d.kind));
    for (const k of ['StatefulSet', 'Deployment', 'Service', 'HorizontalPodAutoscaler', 'PodDisruptionBudget', 'Ingress', 'NetworkPolicy', 'ConfigMap']) {
      expect(kinds, k).toContain(k);
    }
    for (const d of docs()) {
      expect(d.apiVersion, `${d.kind}/${d.metadata?.name}`).toBeTruthy();
      expect(d.metadata?.name, d.kind).toBeTruthy();
      if (!['Namespace'].includes(d.kind)) expect(d.metadata.namespace, `${d.kind}/${d.metadata.name}`).toBe(overlay === 'dev' ? 'nifty50-dev' : 'nifty50');
    }
    for (const k of kinds) if (!/^(Namespace|ServiceAccount|ConfigMap|Secret|Service|Deployment|StatefulSet|HorizontalPodAutoscaler|PodDisruptionBudget|Ingress|NetworkPolicy)$/.test(k)) expect(CUSTOM_KINDS, k).toContain(k);
  });

  it('validates every object against its Kubernetes schema (kubernetes-models; CRDs from their own model packages)', async () => {
    const problems: string[] = [];
    for (const d of docs()) {
      const model = await modelOf(d.apiVersion, d.kind);
      const where = `${d.kind}/${d.metadata?.name}`;
      if (model === null) {
        problems.push(`${where}: no schema for ${d.apiVersion} ${d.kind}`);
        continue;
      }
      try {
        new model(unwrapSecretData(d)).validate();
      } catch (e) {
        problems.push(`${where}: ${(e as Error).message.slice(0, 400)}`);
      }
    }
    expect(problems).toEqual([]);
    // The validator does refuse: the same StatefulSet with a port given as text.
    const sts = structuredClone(docs().find((d) => d.kind === 'StatefulSet')!);
    podSpec(sts).containers[0].ports = [{ name: 'http', containerPort: 'three thousand' }];
    const model = (await modelOf(sts.apiVersion, sts.kind))!;
    expect(() => new model(sts).validate()).toThrow(/containerPort must be integer/);
  });

  it('runs the ingest as owner plus standby and the gateways behind an autoscaler and a disruption budget', () => {
    const ingest = named(docs(), 'StatefulSet', 'nifty50-ingest')!;
    expect(ingest.spec.replicas).toBe(2);
    const gateway = named(docs(), 'Deployment', 'nifty50-gateway')!;
    const hpa = ofKind(docs(), 'HorizontalPodAutoscaler').find((h) => h.spec.scaleTargetRef.name === gateway.metadata.name)!;
    expect(hpa.spec.scaleTargetRef.kind).toBe('Deployment');
    expect(hpa.spec.minReplicas).toBeLessThanOrEqual(hpa.spec.maxReplicas);
    for (const w of [ingest, gateway]) {
      expect(ofKind(docs(), 'PodDisruptionBudget').some((p) => matches(p.spec.selector.matchLabels, podLabels(w))), w.metadata.name).toBe(true);
    }
    if (overlay === 'dev') expect([gateway.spec.replicas, hpa.spec.maxReplicas]).toEqual([1, 1]);
    else expect(hpa.spec.minReplicas).toBeGreaterThan(2);
  });

  it('sets ROLE per workload: ingest on the StatefulSet, gateway on the Deployment', () => {
    const role = (kind: string, name: string) =>
      podSpec(named(docs(), kind, name)!).containers.filter(isOurs).map((c: Obj) => c.env.find((e: Obj) => e.name === 'ROLE')?.value);
    expect(role('StatefulSet', 'nifty50-ingest')).toEqual(['ingest']);
    expect(role('Deployment', 'nifty50-gateway')).toEqual(['gateway']);
  });

  it('probes, sizes and confines every container, and runs it as non-root from a pinned image', () => {
    const problems: string[] = [];
    for (const { w, c } of containersOf(docs())) {
      const at = `${w.kind}/${w.metadata.name}/${c.name}`;
      const pod = podSpec(w).securityContext ?? {};
      const sc = c.securityContext ?? {};
      if (!c.livenessProbe) problems.push(`${at}: no livenessProbe`);
      if (!c.readinessProbe) problems.push(`${at}: no readinessProbe`);
      for (const r of ['cpu', 'memory']) {
        if (!c.resources?.requests?.[r]) problems.push(`${at}: no ${r} request`);
        if (!c.resources?.limits?.[r]) problems.push(`${at}: no ${r} limit`);
      }
      if ((sc.runAsNonRoot ?? pod.runAsNonRoot) !== true) problems.push(`${at}: runAsNonRoot is not true`);
      const uid = sc.runAsUser ?? pod.runAsUser;
      if (uid === undefined || uid === 0) problems.push(`${at}: runAsUser is ${uid} (set a numeric non-root user)`);
      if (sc.allowPrivilegeEscalation !== false) problems.push(`${at}: allowPrivilegeEscalation is not false`);
      if (sc.readOnlyRootFilesystem !== true) problems.push(`${at}: readOnlyRootFilesystem is not true`);
      if (!(sc.capabilities?.drop ?? []).includes('ALL')) problems.push(`${at}: capabilities not all dropped`);
      if (sc.privileged === true) problems.push(`${at}: privileged`);
      const tag = /^(?:.*\/)?[^/:@]+(?::([^@]+))?(?:@sha256:[0-9a-f]{64})?$/.exec(c.image);
      if (!tag || (tag[1] === undefined && !c.image.includes('@sha256:')) || tag[1] === 'latest') problems.push(`${at}: image ${c.image} is not pinned by tag or digest`);
      if (isOurs(c) && tag?.[1] !== version) problems.push(`${at}: image ${c.image} is not this version (${version})`);
    }
    expect(problems).toEqual([]);
    expect(containersOf(docs()).filter(({ c }) => isOurs(c))).toHaveLength(2);
  });

  it('checks liveness on /health and readiness on /ready of the service, on the port PORT says', () => {
    for (const { w, c } of containersOf(docs()).filter(({ c }) => isOurs(c))) {
      const port = c.ports.find((p: Obj) => p.name === c.livenessProbe.httpGet.port)?.containerPort;
      expect(c.livenessProbe.httpGet.path, w.metadata.name).toBe('/health');
      expect(c.readinessProbe.httpGet.path, w.metadata.name).toBe('/ready');
      expect(c.startupProbe?.httpGet?.path, w.metadata.name).toBe('/health');
      expect(String(port), w.metadata.name).toBe(containerEnv(docs(), c).env.PORT);
    }
  });

  it('sets only variables src/config.ts reads, with values it accepts', () => {
    for (const { w, c } of containersOf(docs()).filter(({ c }) => isOurs(c))) {
      const { env, names } = containerEnv(docs(), c);
      expect(unreadVariables(names, env), `${w.metadata.name}: variables src/config.ts does not read`).toEqual([]);
    }
  });

  it('keeps credentials in Secrets that exist (or are created out of band) and have the keys referenced', () => {
    const external = EXTERNAL_SECRETS[overlay];
    const problems: string[] = [];
    const secretRefs: { name: string; key?: string; optional?: boolean; at: string }[] = [];
    for (const { w, c } of containersOf(docs())) {
      const at = `${w.metadata.name}/${c.name}`;
      for (const e of c.env ?? []) {
        if (e.valueFrom?.secretKeyRef) secretRefs.push({ ...e.valueFrom.secretKeyRef, at });
        if (e.value !== undefined && /KEY|TOKEN|SECRET|PASSW|_URL$/.test(e.name) && !/^(ROLE|WORKERS)$/.test(e.name)) problems.push(`${at}: ${e.name} is a literal, not a Secret reference`);
        if (e.valueFrom?.configMapKeyRef && !named(docs(), 'ConfigMap', e.valueFrom.configMapKeyRef.name)) problems.push(`${at}: ConfigMap ${e.valueFrom.configMapKeyRef.name} missing`);
      }
      for (const f of c.envFrom ?? []) {
        if (f.secretRef) secretRefs.push({ name: f.secretRef.name, at });
        if (f.configMapRef && !named(docs(), 'ConfigMap', f.configMapRef.name)) problems.push(`${at}: ConfigMap ${f.configMapRef.name} missing`);
      }
    }
    for (const cm of ofKind(docs(), 'ConfigMap')) {
      for (const k of Object.keys(cm.data ?? {})) if (/KEY|TOKEN|SECRET|PASSW|DATABASE_URL|REDIS_URL|NATS_URL/.test(k)) problems.push(`ConfigMap ${cm.metadata.name} holds ${k}`);
    }
    for (const sm of ofKind(docs(), 'ServiceMonitor')) {
      for (const ep of sm.spec.endpoints) if (ep.authorization?.credentials) secretRefs.push({ ...ep.authorization.credentials, at: `ServiceMonitor ${sm.metadata.name}` });
    }
    for (const ing of ofKind(docs(), 'Ingress')) for (const t of ing.spec.tls ?? []) secretRefs.push({ name: t.secretName, at: `Ingress ${ing.metadata.name}` });
    for (const r of secretRefs) {
      const s = named(docs(), 'Secret', r.name);
      if (s) {
        const keys = Object.keys({ ...(s.data ?? {}), ...(s.stringData ?? {}) });
        if (r.key !== undefined && !r.optional && !keys.includes(r.key)) problems.push(`${r.at}: Secret ${r.name} has no key ${r.key}`);
      } else if (!external.includes(r.name)) {
        problems.push(`${r.at}: Secret ${r.name} is neither in the overlay nor one created out of band`);
      }
    }
    expect(problems).toEqual([]);
    if (overlay === 'prod') {
      // Nothing secret is committed for production, and the README says how to create each key.
      expect(ofKind(docs(), 'Secret')).toEqual([]);
      const deploy = read('README.md').split(/^## Deploy$/m)[1] ?? '';
      const keys = new Set(secretRefs.filter((r) => r.name === 'nifty50-secrets' && r.key).map((r) => r.key!));
      for (const k of keys) expect(deploy, `README "Deploy" names ${k}`).toContain(k);
      // Production trades through Kite: its credentials are required, not optional.
      const kite = secretRefs.filter((r) => r.key?.startsWith('KITE_'));
      expect(kite.length).toBeGreaterThan(0);
      expect(kite.filter((r) => r.optional)).toEqual([]);
    }
  });

  it('matches selectors to labels and Services to existing container ports', () => {
    const problems: string[] = [];
    const pods = workloads(docs()).map((w) => ({ w, labels: podLabels(w), ports: podSpec(w).containers.flatMap((c: Obj) => c.ports ?? []) }));
    for (const { w, labels } of pods) {
      if (!matches(w.spec.selector.matchLabels, labels)) problems.push(`${w.metadata.name}: selector does not match its pod labels`);
    }
    for (const svc of ofKind(docs(), 'Service')) {
      const targets = pods.filter((p) => matches(svc.spec.selector, p.labels));
      if (targets.length === 0) problems.push(`Service ${svc.metadata.name} selects no pods`);
      for (const port of svc.spec.ports) {
        const t = port.targetPort ?? port.port;
        for (const p of targets) {
          if (!p.ports.some((cp: Obj) => cp.name === t || cp.containerPort === t)) problems.push(`Service ${svc.metadata.name}: port ${t} not on ${p.w.metadata.name}`);
        }
      }
    }
    for (const sts of ofKind(docs(), 'StatefulSet')) {
      const svc = named(docs(), 'Service', sts.spec.serviceName);
      if (!svc || svc.spec.clusterIP !== 'None') problems.push(`StatefulSet ${sts.metadata.name}: no headless Service ${sts.spec.serviceName}`);
    }
    for (const pdb of ofKind(docs(), 'PodDisruptionBudget')) {
      if (!pods.some((p) => matches(pdb.spec.selector.matchLabels, p.labels))) problems.push(`PDB ${pdb.metadata.name} selects no pods`);
    }
    for (const np of ofKind(docs(), 'NetworkPolicy')) {
      const sel = np.spec.podSelector.matchLabels;
      if (sel && !pods.some((p) => matches(sel, p.labels))) problems.push(`NetworkPolicy ${np.metadata.name} selects no pods`);
    }
    for (const hpa of ofKind(docs(), 'HorizontalPodAutoscaler')) {
      if (!named(docs(), hpa.spec.scaleTargetRef.kind, hpa.spec.scaleTargetRef.name)) problems.push(`HPA ${hpa.metadata.name}: no target`);
    }
    for (const ing of ofKind(docs(), 'Ingress')) {
      for (const rule of ing.spec.rules) {
        for (const path of rule.http.paths) {
          const svc = named(docs(), 'Service', path.backend.service.name);
          if (!svc) problems.push(`Ingress ${ing.metadata.name}: no Service ${path.backend.service.name}`);
          else if (!svc.spec.ports.some((p: Obj) => p.name === path.backend.service.port.name || p.port === path.backend.service.port.number)) problems.push(`Ingress ${ing.metadata.name}: Service port missing`);
        }
      }
    }
    for (const sm of ofKind(docs(), 'ServiceMonitor')) {
      const svcs = ofKind(docs(), 'Service').filter((s) => matches(sm.spec.selector.matchLabels, s.metadata.labels ?? {}));
      if (svcs.length === 0) problems.push(`ServiceMonitor ${sm.metadata.name} selects no Service`);
      for (const ep of sm.spec.endpoints) for (const s of svcs) if (!s.spec.ports.some((p: Obj) => p.name === ep.port)) problems.push(`ServiceMonitor: ${s.metadata.name} has no port ${ep.port}`);
    }
    for (const { w, c } of containersOf(docs())) {
      const volumes = new Set([...(podSpec(w).volumes ?? []).map((v: Obj) => v.name), ...(w.spec.volumeClaimTemplates ?? []).map((v: Obj) => v.metadata.name)]);
      for (const m of c.volumeMounts ?? []) if (!volumes.has(m.name)) problems.push(`${w.metadata.name}/${c.name}: no volume ${m.name}`);
    }
    expect(problems).toEqual([]);
  });

  it('gives the service somewhere to write under a read-only root: DATA_DIR and /tmp are volumes', () => {
    for (const { w, c } of containersOf(docs()).filter(({ c }) => isOurs(c))) {
      const mounts = (c.volumeMounts ?? []).map((m: Obj) => m.mountPath);
      expect(mounts, w.metadata.name).toContain(containerEnv(docs(), c).env.DATA_DIR);
      expect(mounts, w.metadata.name).toContain('/tmp');
    }
  });

  it("leaves a stopping pod the time src/main.ts's drain may take, after the gateway's pause for its endpoint removal", () => {
    for (const w of workloads(docs()).filter((x) => podSpec(x).containers.some(isOurs))) {
      const c = podSpec(w).containers.find(isOurs);
      const pause = c.lifecycle?.preStop?.exec?.command?.[0] === 'sleep' ? Number(c.lifecycle.preStop.exec.command[1]) : 0;
      expect(podSpec(w).terminationGracePeriodSeconds, w.metadata.name).toBeGreaterThan(pause + drainBoundS);
      if (w.metadata.name === 'nifty50-gateway') expect(pause).toBeGreaterThan(0);
    }
  });

  it('lets only the gateways be reached from outside the namespace (the monitoring namespace aside)', () => {
    const nps = ofKind(docs(), 'NetworkPolicy');
    expect(nps.some((n) => Object.keys(n.spec.podSelector).length === 0 && n.spec.policyTypes.includes('Ingress') && !n.spec.ingress)).toBe(true);
    const pods = workloads(docs()).map((w) => ({ name: w.metadata.name, labels: podLabels(w) }));
    const problems: string[] = [];
    for (const np of nps) {
      for (const rule of np.spec.ingress ?? []) {
        for (const peer of rule.from ?? []) {
          const outside = peer.ipBlock !== undefined || (peer.namespaceSelector !== undefined && peer.namespaceSelector.matchLabels?.['kubernetes.io/metadata.name'] !== 'monitoring');
          if (!outside) continue;
          for (const p of pods.filter((x) => matches(np.spec.podSelector.matchLabels ?? {}, x.labels))) {
            if (p.name !== 'nifty50-gateway') problems.push(`NetworkPolicy ${np.metadata.name} opens ${p.name} to outside`);
          }
        }
      }
    }
    expect(problems).toEqual([]);
  });

  it('serves the edge over TLS from cert-manager, with WebSocket timeouts and a web application firewall', () => {
    const ing = named(docs(), 'Ingress', 'nifty50')!;
    const a = ing.metadata.annotations;
    expect(ing.spec.tls[0].hosts).toEqual(ing.spec.rules.map((r: Obj) => r.host));
    expect(a['cert-manager.io/cluster-issuer']).toBeTruthy();
    if (overlay === 'dev') {
      expect(a['nginx.ingress.kubernetes.io/enable-modsecurity']).toBe('true');
      const snippet = a['nginx.ingress.kubernetes.io/modsecurity-snippet'] as string;
      expect(snippet).toMatch(/^SecRuleEngine On$/m);
      expect(snippet).toMatch(/Include \/etc\/nginx\/owasp-modsecurity-crs\/nginx-modsecurity\.conf/);
      expect(snippet.indexOf('tx.allowed_methods')).toBeLessThan(snippet.indexOf('Include'));
      expect(snippet).toMatch(/allowed_methods=[^']*\bPUT\b[^']*\bDELETE\b/);
      expect(Number(a['nginx.ingress.kubernetes.io/proxy-read-timeout'])).toBeGreaterThanOrEqual(3600);
      expect(a['nginx.ingress.kubernetes.io/limit-rps']).toBeTruthy();
    } else {
      const svc = named(docs(), 'Service', 'nifty50-gateway')!;
      const bc = named(docs(), 'BackendConfig', JSON.parse(svc.metadata.annotations['cloud.google.com/backend-config']).default)!;
      expect(bc.spec.securityPolicy.name).toBeTruthy();
      expect(bc.spec.timeoutSec).toBeGreaterThanOrEqual(3600);
    }
  });
});

describe('monitoring component', () => {
  it("charts and alerts on series the service exports (src/gateway/metrics.ts and prom-client's defaults)", async () => {
    const reg = new Registry();
    collectDefaultMetrics({ register: reg, prefix: 'n50_' });
    const defaults = (await reg.getMetricsAsJSON()).map((m) => m.name);
    const source = read('src/gateway/metrics.ts');
    const exported = (name: string) => source.includes(`'${name}'`) || defaults.includes(name);
    const dashboard = JSON.parse(read('k8s/components/monitoring/grafana-dashboard.json')) as { panels: { targets: { expr: string }[] }[] };
    const exprs = [
      ...dashboard.panels.flatMap((p) => p.targets.map((t) => t.expr)),
      ...ofKind(build('prod'), 'PrometheusRule').flatMap((r) => r.spec.groups.flatMap((g: Obj) => g.rules.map((x: Obj) => x.expr as string))),
    ];
    expect(exprs.length).toBeGreaterThan(10);
    const names = new Set(exprs.flatMap((e) => e.match(/\bn50_[a-z0-9_]+/g) ?? []));
    const missing = [...names].filter((n) => !exported(n) && !exported(n.replace(/_(bucket|sum|count)$/, '')));
    expect(missing).toEqual([]);
  });
});
