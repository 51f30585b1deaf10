import { createServer, type Server } from 'node:net';

/** A claim held across the host until released or until its process dies. */
export interface HostLock {
  release(): void;
}

/**
 * Claims `name` across the host by binding an abstract unix socket named after it. The kernel lets one socket
 * hold a name and frees it when that socket closes, including when its process dies: no lock file can go stale,
 * so there is no stale lock to judge and no race in taking one over. The scope is the network namespace.
 * Resolves undefined when another process holds the name.
 */
export function hostLock(name: string): Promise<HostLock | undefined> {
  return new Promise((resolve, reject) => {
    // Nobody talks to it: a connection (any local process may try) is closed at once.
    const server: Server = createServer((socket) => socket.destroy());
    server.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EADDRINUSE') resolve(undefined);
      else reject(new Error(`cannot take the host lock ${name} (abstract socket): ${err.message}`));
    });
    server.listen({ path: `\0drover-${name}`, backlog: 1 }, () => {
      server.unref();
      resolve({ release: () => void server.close() });
    });
  });
}
