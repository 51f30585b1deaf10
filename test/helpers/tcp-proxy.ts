import { once } from 'node:events';
import { createConnection, createServer, type Socket } from 'node:net';
import type { TestContext } from 'node:test';

/**
 * A TCP proxy a test controls, to cut one process off from a service without touching the service: `forward`
 * passes bytes both ways; `blackhole` keeps every socket open but passes nothing more in either direction, as a
 * partitioned network does (no reset, no FIN: the client's requests simply never get an answer). `heal` closes the
 * blackholed connections, so clients reconnect through the forwarding proxy.
 */
export interface TcpProxy {
  readonly port: number;
  /** The target URL with its host and port replaced by the proxy's. */
  url(target: string): string;
  blackhole(): void;
  heal(): void;
  readonly mode: 'forward' | 'blackhole';
  /** Connections accepted so far. */
  readonly accepted: number;
}

interface Pair {
  client: Socket;
  server: Socket;
}

export async function startTcpProxy(t: Pick<TestContext, 'after'>, target: { host: string; port: number }): Promise<TcpProxy> {
  const pairs = new Set<Pair>();
  let mode: TcpProxy['mode'] = 'forward';
  let accepted = 0;
  const srv = createServer((client) => {
    accepted++;
    if (mode === 'blackhole') {
      // New connections are held too: accepted by the kernel, never answered.
      client.on('error', () => undefined);
      pairs.add({ client, server: client });
      return;
    }
    const server = createConnection(target);
    const pair = { client, server };
    pairs.add(pair);
    const end = (): void => {
      pairs.delete(pair);
      client.destroy();
      server.destroy();
    };
    for (const [from, to] of [[client, server], [server, client]] as const) {
      from.on('data', (chunk: Buffer) => {
        if (mode === 'forward') to.write(chunk);
        // Blackholed: dropped. The stream is broken from here on, so heal() closes the connection.
      });
      from.on('error', end);
      from.on('close', end);
    }
  });
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const { port } = srv.address() as { port: number };
  const closeAll = (): void => {
    for (const p of pairs) {
      p.client.destroy();
      p.server.destroy();
    }
    pairs.clear();
  };
  t.after(async () => {
    closeAll();
    await new Promise<void>((resolve) => srv.close(() => resolve()));
  });
  return {
    port,
    url(targetUrl: string): string {
      const u = new URL(targetUrl);
      u.hostname = '127.0.0.1';
      u.port = String(port);
      return u.toString();
    },
    blackhole(): void {
      mode = 'blackhole';
    },
    heal(): void {
      closeAll();
      mode = 'forward';
    },
    get mode() {
      return mode;
    },
    get accepted() {
      return accepted;
    },
  };
}
