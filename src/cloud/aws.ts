// Amazon's part, loaded only by a build that uses it (scripts/bundle.mjs: dist/bundle/kiln-aws.cjs):
// an S3 object as a build context, and ECR logins, as kaniko's S3 context and
// docker-credential-ecr-login get them.
// - Credentials: the SDK's default chain (AWS_ACCESS_KEY_ID/..., ~/.aws/credentials and config with
//   AWS_PROFILE, AWS_SHARED_CREDENTIALS_FILE/AWS_CONFIG_FILE, SSO, web identity as EKS IRSA sets it,
//   ECS container and EC2 instance metadata), resolved once here so that a missing one is its own error.
// - Region: AWS_REGION, else AWS_DEFAULT_REGION, else the profile's (the SDK reads ~/.aws/config).
// - kaniko's S3_ENDPOINT and S3_FORCE_PATH_STYLE=true for S3-compatible stores (MinIO, Ceph).
import { ECRClient, GetAuthorizationTokenCommand } from '@aws-sdk/client-ecr';
import { GetObjectCommand, S3Client, S3ServiceException } from '@aws-sdk/client-s3';
import { fromNodeProviderChain } from '@aws-sdk/credential-providers';
import { Readable } from 'node:stream';
import { parseEcrHost } from './hosts.js';
import type { CloudCall, CloudObject, CloudRegistryLogin } from './cloud-api.js';
import { nonEmpty, oneLine } from './text.js';

type AwsCredentialIdentity = Awaited<ReturnType<ReturnType<typeof fromNodeProviderChain>>>;

/** The region kiln asks for: undefined lets the SDK take the profile's. */
function regionFrom(env: CloudCall['env']): string | undefined {
  return nonEmpty(env['AWS_REGION']) ?? nonEmpty(env['AWS_DEFAULT_REGION']);
}

const CHAIN = 'environment, shared credentials and config files (AWS_PROFILE), web identity token, container or instance metadata';

async function credentials(call: CloudCall, what: string): Promise<AwsCredentialIdentity> {
  let creds: AwsCredentialIdentity;
  try {
    const profile = nonEmpty(call.env['AWS_PROFILE']);
    creds = await fromNodeProviderChain(profile !== undefined ? { profile } : {})();
  } catch (err) {
    // The chain's message lists its providers' failures, which name files and profiles, never keys.
    throw call.fail(`${what}: no AWS credentials found (${CHAIN})`, err);
  }
  call.secret(creds.secretAccessKey);
  call.secret(creds.sessionToken);
  return creds;
}

/** The S3 error's code and what it means here, in words a user can act on. */
function s3Cause(err: unknown, region: string | undefined): string {
  const name = err instanceof Error ? err.name : 'Error';
  const meta = err instanceof S3ServiceException ? err.$metadata : undefined;
  const headers = (err as { $response?: { headers?: Record<string, string> } }).$response?.headers ?? {};
  const bucketRegion = headers['x-amz-bucket-region'];
  switch (name) {
    case 'NoSuchKey':
      return 'no such object (NoSuchKey)';
    case 'NoSuchBucket':
      return 'no such bucket (NoSuchBucket)';
    case 'InvalidAccessKeyId':
      return 'the access key id is not known to the server (InvalidAccessKeyId)';
    case 'SignatureDoesNotMatch':
      return 'the secret access key does not match the access key id (SignatureDoesNotMatch)';
    case 'ExpiredToken':
    case 'TokenRefreshRequired':
      return `the session token has expired (${name})`;
    case 'AccessDenied':
      return 'access denied (AccessDenied): the credentials may not read this object';
    case 'PermanentRedirect':
    case 'AuthorizationHeaderMalformed':
    case 'IllegalLocationConstraintException':
      return `the bucket is in ${bucketRegion ?? 'another region'}, not ${region ?? 'the configured region'} (${name}): set AWS_REGION`;
    default:
      if (meta?.httpStatusCode === 301 || bucketRegion !== undefined && region !== undefined && bucketRegion !== region) {
        return `the bucket is in ${bucketRegion ?? 'another region'}, not ${region ?? 'the configured region'}: set AWS_REGION`;
      }
      if (name === 'Error' && /region is missing/i.test((err as Error).message)) return 'no AWS region: set AWS_REGION (or a region in the profile)';
      return `${name}${meta?.httpStatusCode !== undefined ? ` (HTTP ${meta.httpStatusCode})` : ''}: ${oneLine((err as Error).message)}`;
  }
}

export interface S3Location {
  readonly bucket: string;
  readonly key: string;
  /** How messages name it: `s3://bucket/key`. */
  readonly shown: string;
}

/** GetObject's body as it arrives: the caller unpacks it while it downloads. */
export async function openS3Object(loc: S3Location, call: CloudCall): Promise<CloudObject> {
  const creds = await credentials(call, loc.shown);
  const region = regionFrom(call.env);
  const endpoint = nonEmpty(call.env['S3_ENDPOINT']);
  const client = new S3Client({
    credentials: creds,
    ...(region !== undefined ? { region } : {}),
    ...(endpoint !== undefined ? { endpoint } : {}),
    forcePathStyle: call.env['S3_FORCE_PATH_STYLE']?.toLowerCase() === 'true',
    // Bodies are checked by the archive's own framing and the layer digests kiln computes; stores
    // such as MinIO and Ceph send no checksums the SDK could check.
    responseChecksumValidation: 'WHEN_REQUIRED',
    maxAttempts: 3,
  });
  let resolvedRegion = region;
  try {
    resolvedRegion = await client.config.region();
  } catch (err) {
    throw call.fail(`${loc.shown}: ${s3Cause(err, undefined)}`, err);
  }
  try {
    const out = await client.send(new GetObjectCommand({ Bucket: loc.bucket, Key: loc.key }), { abortSignal: call.signal });
    if (!(out.Body instanceof Readable)) throw new Error('the response has no body');
    const body = out.Body;
    // The client's sockets go when the body has been read (or failed): nothing else holds them.
    body.once('close', () => client.destroy());
    return { body };
  } catch (err) {
    client.destroy();
    throw call.fail(`${loc.shown}: ${s3Cause(err, resolvedRegion)}`, err);
  }
}

/** An ECR login (`AWS` and a 12-hour token), as docker-credential-ecr-login gets it. */
export async function ecrLogin(host: string, call: CloudCall): Promise<CloudRegistryLogin> {
  const what = `registry ${host}`;
  const parsed = parseEcrHost(host);
  if (parsed === undefined) throw call.fail(`${what}: not an ECR registry host (ACCOUNT.dkr.ecr.REGION.amazonaws.com)`, undefined);
  const creds = await credentials(call, what);
  const client = new ECRClient({ credentials: creds, region: parsed.region, useFipsEndpoint: parsed.fips, maxAttempts: 3 });
  try {
    const out = await client.send(new GetAuthorizationTokenCommand({ registryIds: [parsed.account] }), { abortSignal: call.signal });
    const token = out.authorizationData?.[0]?.authorizationToken;
    if (token === undefined) throw new Error('ECR returned no authorization token');
    const decoded = Buffer.from(token, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) throw new Error('ECR returned a token that is not base64 of user:password');
    call.secret(token);
    call.secret(decoded.slice(colon + 1));
    return { kind: 'basic', username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
  } catch (err) {
    const name = err instanceof Error ? err.name : 'Error';
    throw call.fail(`${what}: ECR GetAuthorizationToken failed: ${name}: ${oneLine(err instanceof Error ? err.message : String(err))}`, err);
  } finally {
    client.destroy();
  }
}
