// What an isolated RUN has hidden (src/builder/run-isolation.ts hiddenPaths): pure planning, checked
// on the inputs a Kubernetes pod, a GitLab job and a docker run line give kiln.
import { describe, expect, it } from 'vitest';
import { hiddenPaths, type HiddenPathInputs } from '../../src/builder/run-isolation.js';

function inputs(over: Partial<HiddenPathInputs['request']> = {}, env: Record<string, string> = {}, mountPoints: string[] = []): HiddenPathInputs {
  return {
    request: {
      workDir: '/kaniko',
      ignorePaths: [],
      secrets: new Map(),
      ssh: [],
      mountCacheDir: '/kaniko/cache',
      baseImageCache: undefined,
      registry: { dockerConfigDir: '/kaniko/.docker', registryClientCertificates: new Map() },
      ...over,
    },
    env: { HOME: '/root', DOCKER_CONFIG: '/kaniko/.docker', ...env },
    mountPoints,
  };
}

describe('hiddenPaths', () => {
  it("hides kiln's dir, and what lies under it only through it", () => {
    expect(hiddenPaths(inputs({}, {}, ['/kaniko/.docker/config.json', '/workspace', '/etc/resolv.conf', '/proc', '/dev']))).toEqual(['/kaniko']);
  });

  it("hides a pod's credential mounts, but not the context volume or the runtime's files", () => {
    const mounts = ['/workspace', '/root/.aws', '/var/run/secrets/kubernetes.io/serviceaccount', '/etc/hosts', '/root/.config/gcloud', '/tekton/creds', '/tekton/results'];
    expect(hiddenPaths(inputs({}, {}, mounts))).toEqual(['/kaniko', '/root/.aws', '/tekton/creds', '/root/.config/gcloud', '/var/run/secrets/kubernetes.io/serviceaccount']);
  });

  it('hides files the credential variables and flags name when they are outside the image, never the image', () => {
    const env = { GOOGLE_APPLICATION_CREDENTIALS: '/secrets/gcp/key.json', AWS_WEB_IDENTITY_TOKEN_FILE: '/var/run/aws/token', AZURE_FEDERATED_TOKEN_FILE: '/etc/app/token' };
    const request = {
      secrets: new Map([
        ['npmrc', { kind: 'file' as const, path: '/secrets/npmrc' }],
        ['pw', { kind: 'env' as const, variable: 'PW', value: 'x' }],
        ['inimage', { kind: 'file' as const, path: '/usr/share/doc/x' }],
      ]),
      ssh: [{ id: 'default', paths: ['/ssh/agent.sock'] }],
      registry: { dockerConfigDir: '/home/ci/.docker', registryClientCertificates: new Map([['reg', { cert: '/certs/c.pem', key: '/certs/k.pem' }]]) },
    };
    // /secrets and /certs are volumes, /var/run/aws too; /etc/app and /usr/share/doc are the image's.
    const hidden = hiddenPaths(inputs(request, env, ['/secrets', '/certs', '/var/run/aws', '/ssh']));
    expect(hidden).toEqual(['/kaniko', '/certs/k.pem', '/secrets/npmrc', '/ssh/agent.sock', '/secrets/gcp/key.json', '/var/run/aws/token']);
  });

  it('follows $HOME and --kaniko-dir (then /kaniko is the image\'s), and never takes / for a volume', () => {
    const hidden = hiddenPaths(inputs({ workDir: '/var/kiln' }, { HOME: '/home/build', DOCKER_CONFIG: '/' }, ['/home/build/.docker', '/root/.azure', '/']));
    expect(hidden).toEqual(['/root/.azure', '/var/kiln', '/home/build/.docker']);
  });

  it('hides an --ignore-path only for what kiln keeps there, not the path itself', () => {
    expect(hiddenPaths(inputs({ ignorePaths: ['/cache'], mountCacheDir: '/cache/run' }))).toEqual(['/kaniko', '/cache/run']);
  });
});
