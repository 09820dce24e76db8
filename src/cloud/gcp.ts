// Google's part, loaded only by a build that uses it (scripts/bundle.mjs: dist/bundle/kiln-gcp.cjs): a
// Cloud Storage object as a build context (kaniko's `gs://`), and GCR / Artifact Registry logins, as
// docker-credential-gcr gets them. Credentials: Application Default Credentials
// (GOOGLE_APPLICATION_CREDENTIALS, gcloud's application_default_credentials.json, the metadata server
// on GCE, GKE and Cloud Build). STORAGE_EMULATOR_HOST (the SDK's own variable) points the client at an
// emulator, which takes no credentials.
import { Storage } from '@google-cloud/storage';
import { GoogleAuth } from 'google-auth-library';
import type { Readable } from 'node:stream';
import type { CloudCall, CloudObject, CloudRegistryLogin } from './cloud-api.js';
import { oneLine } from './text.js';

const SCOPES = ['https://www.googleapis.com/auth/cloud-platform'];

/**
 * The project the auth library is told, so that it never goes looking for one: reading an object and
 * getting a registry token need none, and without it google-auth-library finds one before it gives
 * any token (running `gcloud`, asking the metadata server, or, for workload identity federation's
 * `external_account` credentials, calling Cloud Resource Manager with the fresh token), which fails
 * where the identity may not read its project: a login that docker-credential-gcr would have made.
 * The user's own project variable when set; else a name no request carries.
 */
function projectFor(env: CloudCall['env']): string {
  return env['GOOGLE_CLOUD_PROJECT'] || env['GCLOUD_PROJECT'] || 'kiln-unused-project';
}

/** The API's or the auth library's failure, in words a user can act on. */
function gcsCause(err: unknown): string {
  const e = err as { code?: unknown; message?: unknown };
  const message = typeof e.message === 'string' ? e.message : String(err);
  if (/default credentials|Could not load the default credentials|Unable to detect a Project Id/i.test(message)) {
    return 'no Google credentials found (GOOGLE_APPLICATION_CREDENTIALS, gcloud application-default login, or the metadata server)';
  }
  switch (e.code) {
    case 404:
      return `no such object or bucket (HTTP 404: ${oneLine(message)})`;
    case 401:
      return 'the credentials were refused (HTTP 401)';
    case 403:
      return `access denied (HTTP 403): the credentials may not read this object`;
    default:
      return `${typeof e.code === 'number' ? `HTTP ${e.code}: ` : ''}${oneLine(message)}`;
  }
}

export interface GcsLocation {
  readonly bucket: string;
  readonly object: string;
  /** `gs://bucket/object`, for messages. */
  readonly shown: string;
}

/** The object's bytes as they arrive (the SDK checks its CRC32C at the end), after the response began. */
export async function openGcsObject(loc: GcsLocation, call: CloudCall): Promise<CloudObject> {
  const storage = new Storage({ projectId: projectFor(call.env), retryOptions: { autoRetry: true, maxRetries: 3 } });
  const body: Readable = storage.bucket(loc.bucket).file(loc.object).createReadStream();
  const onAbort = (): void => {
    body.destroy(call.signal.reason instanceof Error ? call.signal.reason : new Error('aborted'));
  };
  call.signal.addEventListener('abort', onAbort, { once: true });
  body.once('close', () => call.signal.removeEventListener('abort', onAbort));
  // The first failure (no credentials, 404, 403) comes before the first byte: report it as its own
  // line. The request starts when the stream is first read: 'readable' does that, and holds the bytes.
  await new Promise<void>((resolve, reject) => {
    const done = (): void => {
      body.off('error', failed);
      resolve();
    };
    const failed = (err: unknown): void => {
      body.off('readable', done);
      reject(call.fail(`${loc.shown}: ${gcsCause(err)}`, err));
    };
    body.once('readable', done);
    body.once('error', failed);
  });
  return { body };
}

/** `oauth2accesstoken` and an access token from Application Default Credentials. */
export async function gcrLogin(host: string, call: CloudCall): Promise<CloudRegistryLogin> {
  const auth = new GoogleAuth({ scopes: SCOPES, projectId: projectFor(call.env) });
  let token: string | null | undefined;
  try {
    token = await auth.getAccessToken();
  } catch (err) {
    throw call.fail(`registry ${host}: ${gcsCause(err)}`, err);
  }
  if (token === null || token === undefined || token === '') throw call.fail(`registry ${host}: Application Default Credentials gave no access token`, undefined);
  call.secret(token);
  return { kind: 'basic', username: 'oauth2accesstoken', password: token };
}
