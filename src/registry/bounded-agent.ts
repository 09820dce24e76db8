// HTTP(S) agents whose sockets cannot wait forever. A peer that accepts and never answers (a hung
// proxy, a half-dead load balancer) otherwise holds a build until the CI job's own timeout: fetch has
// no timeouts of its own, and an AbortSignal deadline would also cut a large, healthy download.
// So the limits are on silence, not on total time: connecting (TCP and TLS handshake) must finish
// within `connectMs`, and once connected the socket may not go `idleMs` without a byte, whether we
// are waiting for response headers or for the rest of a body. Every request kiln makes (registries,
// token servers, https contexts, ADD URLs) goes through one of these agents.
import { Agent as HttpAgent, type AgentOptions, type ClientRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, type AgentOptions as HttpsAgentOptions } from 'node:https';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { WaitTimeoutError } from '../errors.js';

export interface WaitLimits {
  /** TCP connect plus TLS handshake. */
  readonly connectMs: number;
  /** Longest silence once connected: before the response headers, and between body bytes. */
  readonly idleMs: number;
}

/** Long enough for a slow registry across an ocean, short enough that a CI job fails in minutes, not hours. */
export const DEFAULT_WAIT_LIMITS: WaitLimits = { connectMs: 30_000, idleMs: 60_000 };

/** What Node keeps on a socket about the request using it (internal, hence read defensively). */
interface SocketInUse {
  readonly _httpMessage?: (ClientRequest & { readonly res?: IncomingMessage | null }) | null;
}

/** Arms the connect deadline, then the idle deadline, on a socket an agent just created. */
function bound(socket: Socket, host: string, limits: WaitLimits, secure: boolean): void {
  const connectTimer = setTimeout(() => {
    socket.destroy(new WaitTimeoutError(host, 'connect', limits.connectMs));
  }, limits.connectMs);
  // Destroyed sockets must not keep the process alive for the rest of the deadline.
  connectTimer.unref();
  socket.once('close', () => clearTimeout(connectTimer));
  socket.once(secure ? 'secureConnect' : 'connect', () => {
    clearTimeout(connectTimer);
    socket.setTimeout(limits.idleMs);
  });
  // node-fetch calls `request.setTimeout(0)` when the headers arrive, which would switch the idle
  // deadline off for the whole body: on our sockets "no deadline" means our idle deadline.
  const setTimeoutOf = socket.setTimeout.bind(socket);
  socket.setTimeout = (ms: number, callback?: () => void): Socket => setTimeoutOf(ms === 0 ? limits.idleMs : ms, callback);
  socket.on('timeout', onIdle);
  (socket as Socket & { [OWN_IDLE]?: () => void })[OWN_IDLE] = onIdle;
  function onIdle(): void {
    const req = (socket as Socket & SocketInUse)._httpMessage;
    if (req === null || req === undefined) {
      // An idle keep-alive socket in the pool: nobody is waiting on it.
      socket.destroy();
      return;
    }
    const res = req.res;
    const err = new WaitTimeoutError(host, res !== null && res !== undefined ? 'body' : 'response', limits.idleMs);
    // The body stream gets our error itself; Node would otherwise report a bare "aborted".
    if (res !== null && res !== undefined) res.destroy(err);
    socket.destroy(err);
  }
}

const OWN_IDLE = Symbol('kiln idle listener');

/**
 * Node's ClientRequest.setTimeout (node-fetch calls it on every response) leaves a 'timeout' listener
 * on a keep-alive socket per request served; once the socket is back in the pool only ours matters.
 */
function pruneTimeoutListeners(socket: Socket): void {
  const own = (socket as Socket & { [OWN_IDLE]?: () => void })[OWN_IDLE];
  for (const l of socket.listeners('timeout')) if (l !== own) socket.removeListener('timeout', l as () => void);
}

function hostOf(options: { host?: string | null | undefined; hostname?: string | null | undefined; port?: number | string | null | undefined }): string {
  const h = options.hostname ?? options.host ?? 'localhost';
  const shown = h.includes(':') ? `[${h}]` : h;
  return options.port !== undefined && options.port !== null && options.port !== '' ? `${shown}:${options.port}` : shown;
}

// No `timeout` in the agents' options: with one, Node adds a 'timeout' listener to a keep-alive socket
// for every request it serves (a MaxListenersExceededWarning on stderr after ten). Node resets a socket
// returning to the pool to the agent's timeout, 0, which the override in bound() turns into idleMs.

export class BoundedHttpAgent extends HttpAgent {
  readonly #limits: WaitLimits;
  constructor(limits: WaitLimits, options: AgentOptions = {}) {
    super(options);
    this.#limits = limits;
    this.on('free', pruneTimeoutListeners);
  }
  override createConnection(...args: Parameters<HttpAgent['createConnection']>): ReturnType<HttpAgent['createConnection']> {
    const socket = super.createConnection(...args);
    if (socket !== null && socket !== undefined) bound(socket as Socket, hostOf(args[0]), this.#limits, false);
    return socket;
  }
}

export class BoundedHttpsAgent extends HttpsAgent {
  readonly #limits: WaitLimits;
  constructor(limits: WaitLimits, options: HttpsAgentOptions = {}) {
    super(options);
    this.#limits = limits;
    this.on('free', pruneTimeoutListeners);
  }
  override createConnection(...args: Parameters<HttpAgent['createConnection']>): ReturnType<HttpAgent['createConnection']> {
    const socket = super.createConnection(...args) as TLSSocket;
    bound(socket, hostOf(args[0]), this.#limits, true);
    return socket;
  }
}

/** Agents for one-off fetches (an https context, an ADD URL): no keep-alive, chosen per URL so redirects across schemes work. */
export function boundedAgents(limits: WaitLimits): (url: URL) => HttpAgent {
  const http = new BoundedHttpAgent(limits);
  const https = new BoundedHttpsAgent(limits);
  return (url) => (url.protocol === 'http:' ? http : https);
}
