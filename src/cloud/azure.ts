// Microsoft's part, loaded only by a build that uses it (scripts/bundle.mjs: dist/bundle/kiln-azure.cjs):
// an Azure Blob Storage object as a build context (kaniko's
// `https://ACCOUNT.blob.core.windows.net/CONTAINER/PATH`), and ACR logins, as docker-credential-acr-env
// gets them. Credentials, first found wins:
// - AZURE_STORAGE_ACCESS_KEY (kaniko's), or AZURE_STORAGE_KEY (the az CLI's): the account's shared key;
// - AZURE_STORAGE_CONNECTION_STRING naming the same account (its key or SAS, and its endpoint);
// - AZURE_STORAGE_SAS_TOKEN (the az CLI's): a shared access signature;
// - else the SDK's DefaultAzureCredential: a service principal in AZURE_CLIENT_ID/AZURE_TENANT_ID/
//   AZURE_CLIENT_SECRET, AKS workload identity, managed identity, a logged-in az CLI.
// AZURE_STORAGE_SERVICE_ENDPOINT (the az CLI's `--blob-endpoint`) replaces the account's endpoint, for
// Azure Stack or an emulator (Azurite).
import { DefaultAzureCredential } from '@azure/identity';
import { AnonymousCredential, BlobServiceClient, StorageSharedKeyCredential, type BlobClient } from '@azure/storage-blob';
import { Readable } from 'node:stream';
import { z } from 'zod';
import type { CloudCall, CloudObject, CloudRegistryLogin } from './cloud-api.js';
import { nonEmpty, oneLine } from './text.js';

export interface BlobLocation {
  /** The blob's URL as given: `https://ACCOUNT.blob.core.windows.net/CONTAINER/PATH`. */
  readonly url: string;
  readonly account: string;
  readonly container: string;
  readonly blob: string;
  readonly shown: string;
}

/** `Key=Value;...` as Azure writes connection strings (values may hold `=`). */
function parseConnectionString(s: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of s.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0) out.set(part.slice(0, eq).trim().toLowerCase(), part.slice(eq + 1).trim());
  }
  return out;
}

function blobClientFor(loc: BlobLocation, call: CloudCall): { client: BlobClient; how: string } {
  const env = call.env;
  const endpoint = nonEmpty(env['AZURE_STORAGE_SERVICE_ENDPOINT'])?.replace(/\/+$/, '') ?? new URL(loc.url).origin;
  const key = nonEmpty(env['AZURE_STORAGE_ACCESS_KEY']) ?? nonEmpty(env['AZURE_STORAGE_KEY']);
  if (key !== undefined) {
    call.secret(key);
    return { client: new BlobServiceClient(endpoint, new StorageSharedKeyCredential(loc.account, key)).getContainerClient(loc.container).getBlobClient(loc.blob), how: 'the account key' };
  }
  const conn = nonEmpty(env['AZURE_STORAGE_CONNECTION_STRING']);
  if (conn !== undefined) {
    const parts = parseConnectionString(conn);
    call.secret(parts.get('accountkey'));
    call.secret(parts.get('sharedaccesssignature'));
    if ((parts.get('accountname') ?? '').toLowerCase() === loc.account.toLowerCase() || parts.has('blobendpoint')) {
      return { client: BlobServiceClient.fromConnectionString(conn).getContainerClient(loc.container).getBlobClient(loc.blob), how: 'the connection string' };
    }
  }
  const sas = nonEmpty(env['AZURE_STORAGE_SAS_TOKEN'])?.replace(/^\?/, '');
  if (sas !== undefined) {
    call.secret(sas);
    return { client: new BlobServiceClient(`${endpoint}?${sas}`, new AnonymousCredential()).getContainerClient(loc.container).getBlobClient(loc.blob), how: 'the SAS token' };
  }
  return { client: new BlobServiceClient(endpoint, new DefaultAzureCredential()).getContainerClient(loc.container).getBlobClient(loc.blob), how: 'Azure identity' };
}

/**
 * Entra ID's reason in an @azure/identity AuthenticationError: `AADSTS7000215: Invalid client secret
 * provided. ...`. The SDK's first line says only which credential failed, with a status of its own
 * (EnvironmentCredential reports any refusal as 400); the service's words come after `More details:`,
 * and end where its trace and correlation ids begin.
 */
function entraReason(err: { message?: unknown; errorResponse?: unknown }): string | undefined {
  const response = err.errorResponse as { errorDescription?: unknown } | undefined;
  const text = [typeof response?.errorDescription === 'string' ? response.errorDescription : '', typeof err.message === 'string' ? err.message : ''].join(' ');
  const m = /AADSTS\d+:.*?(?=\s+Trace ID:|\s+-\s+Correlation ID:|$)/s.exec(text);
  return m === null ? undefined : oneLine(m[0]);
}

/** The service's error code and what it means here. */
function blobCause(err: unknown, how: string): string {
  const e = err as { statusCode?: unknown; code?: unknown; name?: unknown; message?: unknown; errorResponse?: unknown };
  const code = typeof e.code === 'string' ? e.code : undefined;
  const message = typeof e.message === 'string' ? e.message : String(err);
  if (e.name === 'CredentialUnavailableError' || e.name === 'AggregateAuthenticationError' || e.name === 'AuthenticationRequiredError') {
    return 'no Azure credentials found (AZURE_STORAGE_ACCESS_KEY, AZURE_STORAGE_CONNECTION_STRING, AZURE_STORAGE_SAS_TOKEN, a service principal, workload or managed identity, az login)';
  }
  const reason = e.name === 'AuthenticationError' ? entraReason(e) : undefined;
  if (reason !== undefined) return `${how} was refused by Microsoft Entra ID: ${reason}`;
  switch (code) {
    case 'BlobNotFound':
      return 'no such blob (BlobNotFound)';
    case 'ContainerNotFound':
      return 'no such container (ContainerNotFound)';
    case 'AuthenticationFailed':
      return `${how} was refused (AuthenticationFailed): wrong key or signature`;
    case 'AuthorizationFailure':
      // Azurite's answer to a wrong SharedKey signature; Azure's to a request its network rules refuse.
      return `${how} was refused (AuthorizationFailure): a wrong key, or the account does not allow this request`;
    case 'AuthorizationPermissionMismatch':
      return `access denied (${code}): the credentials may not read this blob`;
    case 'ResourceNotFound':
      return 'no such account, container or blob (ResourceNotFound)';
    default:
      return `${code ?? (typeof e.name === 'string' ? e.name : 'Error')}${typeof e.statusCode === 'number' ? ` (HTTP ${e.statusCode})` : ''}: ${oneLine(message.split('\n')[0] ?? message)}`;
  }
}

/** The blob's bytes as they arrive (the SDK resumes a dropped download where it stopped). */
export async function openAzureBlob(loc: BlobLocation, call: CloudCall): Promise<CloudObject> {
  const { client, how } = blobClientFor(loc, call);
  try {
    const res = await client.download(0, undefined, { abortSignal: call.signal, maxRetryRequests: 3 });
    const stream = res.readableStreamBody;
    if (stream === undefined) throw new Error('the response has no body');
    return { body: stream instanceof Readable ? stream : Readable.from(stream) };
  } catch (err) {
    throw call.fail(`${loc.shown}: ${blobCause(err, how)}`, err);
  }
}

const exchangeSchema = z.looseObject({ refresh_token: z.string().min(1) });

/**
 * An ACR refresh token: a Microsoft Entra ID access token (DefaultAzureCredential) exchanged at the registry's
 * /oauth2/exchange, as docker-credential-acr-env does; the registry client then trades it for access
 * tokens at the registry's token realm, as for any `identitytoken`.
 */
export async function acrLogin(host: string, call: CloudCall): Promise<CloudRegistryLogin> {
  const what = `registry ${host}`;
  let aad: string;
  try {
    const token = await new DefaultAzureCredential().getToken('https://management.azure.com/.default', { abortSignal: call.signal });
    aad = token.token;
  } catch (err) {
    throw call.fail(`${what}: ${blobCause(err, 'Azure identity')}`, err);
  }
  call.secret(aad);
  const body = new URLSearchParams({ grant_type: 'access_token', service: host, access_token: aad });
  const tenant = nonEmpty(call.env['AZURE_TENANT_ID']);
  if (tenant !== undefined) body.set('tenant', tenant);
  let res: Response;
  try {
    res = await fetch(`https://${host}/oauth2/exchange`, { method: 'POST', body, signal: call.signal });
  } catch (err) {
    throw call.fail(`${what}: /oauth2/exchange: ${oneLine((err as Error).message)}`, err);
  }
  if (!res.ok) throw call.fail(`${what}: /oauth2/exchange refused the Entra ID token (HTTP ${res.status})`, undefined);
  const parsed = exchangeSchema.safeParse(await res.json().catch(() => undefined));
  if (!parsed.success) throw call.fail(`${what}: /oauth2/exchange returned no refresh_token`, undefined);
  const refresh = parsed.data.refresh_token;
  call.secret(refresh);
  return { kind: 'identity-token', token: refresh };
}
