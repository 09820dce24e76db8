// The SSH agent a RUN sees (`RUN --mount=type=ssh`): a Unix socket kiln listens on for that RUN only,
// owned by the mount's uid/gid with its mode (BuildKit: 0/0/0600), relaying to the real agent. As
// BuildKit's sshprovider does (a readOnlyAgent in front of the user's agent), only listing keys and
// signing get through: adding, removing, locking and extensions are answered SSH_AGENT_FAILURE, so a
// RUN can use the keys but never change the agent. The host's socket path never enters the sandbox.
//
// The agent protocol (draft-miller-ssh-agent): each message is a uint32 length, then a type byte and
// the body; the client sends a request and waits for its one reply, so requests are relayed in order.
import { chmod, chown, rm } from 'node:fs/promises';
import { connect, createServer, type Server, type Socket } from 'node:net';
import type { RunContext } from '../log/run-context.js';
import { SandboxError } from '../errors.js';

const SSH_AGENTC_REQUEST_IDENTITIES = 11;
const SSH_AGENTC_SIGN_REQUEST = 13;
/** The only requests relayed; everything else changes the agent or reaches past it. */
const RELAYED: ReadonlySet<number> = new Set([SSH_AGENTC_REQUEST_IDENTITIES, SSH_AGENTC_SIGN_REQUEST]);
const SSH_AGENT_FAILURE: Buffer = Buffer.from([0, 0, 0, 1, 5]);
/** OpenSSH's ssh-agent refuses longer requests (AGENT_MAX_LEN). */
const MAX_REQUEST = 256 * 1024;
/** golang.org/x/crypto/ssh/agent's limit for replies. */
const MAX_REPLY = 16 << 20;
/** sockaddr_un.sun_path holds 108 bytes with the terminating NUL. */
const MAX_SOCKET_PATH = 107;

export interface AgentProxyOptions {
  /** Where to listen (a path in a directory only kiln writes to). */
  readonly path: string;
  /** The agent socket requests are relayed to. */
  readonly agent: string;
  readonly uid: number;
  readonly gid: number;
  readonly mode: number;
}

export interface AgentProxy {
  readonly path: string;
  /** Stops listening, cuts open connections and removes the socket. */
  close(): Promise<void>;
}

export async function openAgentProxy(o: AgentProxyOptions, ctx: RunContext): Promise<AgentProxy> {
  if (Buffer.byteLength(o.path) > MAX_SOCKET_PATH) {
    throw new SandboxError(`cannot create the SSH agent socket ${o.path}: the path is longer than a Unix socket allows (choose a shorter --work-dir)`);
  }
  const open = new Set<Socket>();
  const server = createServer((client) => {
    open.add(client);
    client.once('close', () => open.delete(client));
    relay(client, o.agent, open, ctx).catch((err: unknown) => ctx.log.debug({ err: (err as Error).message }, 'ssh agent proxy: connection ended'));
  });
  await listen(server, o.path);
  server.on('error', (err) => ctx.log.warn(`RUN --mount=type=ssh: agent socket ${o.path}: ${err.message}`));
  const close = async (): Promise<void> => {
    for (const s of open) s.destroy();
    await new Promise<void>((res) => server.close(() => res()));
    await rm(o.path, { force: true });
  };
  try {
    await chown(o.path, o.uid, o.gid);
    await chmod(o.path, o.mode & 0o777);
  } catch (err) {
    await close();
    throw err;
  }
  return { path: o.path, close };
}

function listen(server: Server, path: string): Promise<void> {
  return new Promise((res, rej) => {
    server.once('error', rej);
    server.listen(path, () => {
      server.off('error', rej);
      res();
    });
  });
}

/** One connection from inside the sandbox: requests in order, each relayed or refused. */
async function relay(client: Socket, agentPath: string, open: Set<Socket>, ctx: RunContext): Promise<void> {
  const requests = new MessageReader(client, MAX_REQUEST);
  let agent: { socket: Socket; replies: MessageReader } | undefined;
  try {
    for (;;) {
      const request = await requests.next();
      if (request === undefined) return;
      const type = request.length > 4 ? (request[4] as number) : -1;
      let reply = SSH_AGENT_FAILURE;
      if (RELAYED.has(type)) {
        if (agent === undefined) {
          const socket = await connectTo(agentPath).catch((err: unknown) => {
            ctx.log.warn(`RUN --mount=type=ssh: cannot reach the SSH agent at ${agentPath}: ${(err as Error).message}`);
            throw err;
          });
          open.add(socket);
          socket.once('close', () => open.delete(socket));
          agent = { socket, replies: new MessageReader(socket, MAX_REPLY) };
        }
        await write(agent.socket, request);
        const r = await agent.replies.next();
        if (r === undefined) throw new Error('the agent closed the connection');
        reply = r;
      } else {
        ctx.log.debug({ type }, 'ssh agent proxy: request refused (the agent is read-only for RUN)');
      }
      await write(client, reply);
    }
  } finally {
    client.destroy();
    agent?.socket.destroy();
  }
}

function connectTo(path: string): Promise<Socket> {
  return new Promise((res, rej) => {
    const s = connect(path);
    s.once('error', rej);
    s.once('connect', () => {
      s.off('error', rej);
      res(s);
    });
  });
}

function write(s: Socket, bytes: Buffer): Promise<void> {
  return new Promise((res, rej) => s.write(bytes, (err) => (err ? rej(err) : res())));
}

/** Whole length-prefixed messages from a socket; pauses it while a message's worth is waiting. */
class MessageReader {
  #buf: Buffer = Buffer.alloc(0);
  #done = false;
  #error: Error | undefined;
  #wake: (() => void) | undefined;
  readonly #socket: Socket;
  readonly #max: number;

  constructor(socket: Socket, max: number) {
    this.#socket = socket;
    this.#max = max;
    const wake = (): void => {
      const w = this.#wake;
      this.#wake = undefined;
      w?.();
    };
    socket.on('data', (chunk: Buffer) => {
      this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
      if (this.#buf.length > 4 + this.#max) socket.pause();
      wake();
    });
    socket.once('end', () => {
      this.#done = true;
      wake();
    });
    socket.once('close', () => {
      this.#done = true;
      wake();
    });
    socket.on('error', (err) => {
      this.#error = err;
      wake();
    });
  }

  /** The next message, length prefix included; undefined once the peer has closed. */
  async next(): Promise<Buffer | undefined> {
    for (;;) {
      if (this.#buf.length >= 4) {
        const len = this.#buf.readUInt32BE(0);
        if (len > this.#max) throw new Error(`agent message of ${len} bytes exceeds ${this.#max}`);
        if (this.#buf.length >= 4 + len) {
          const msg = this.#buf.subarray(0, 4 + len);
          this.#buf = this.#buf.subarray(4 + len);
          this.#socket.resume();
          return msg;
        }
      }
      if (this.#error !== undefined) throw this.#error;
      if (this.#done) return undefined;
      await new Promise<void>((res) => (this.#wake = res));
    }
  }
}
