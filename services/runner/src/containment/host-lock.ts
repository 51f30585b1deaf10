import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:net';

/** A claim held across the host until released or until its process dies. */
export interface HostLock {
  release(): void;
}

/** An abstract socket's name is the whole of sun_path after its leading NUL. */
const ABSTRACT_NAME_BYTES = 107;

/**
 * The socket path for `name`, always the full 107 bytes. Node versions disagree on an abstract name's length: some
 * bind it padded with NULs to the end of sun_path, others exactly as given, and the kernel sees two different names,
 * so runners on different Node versions would both "hold" the same lock. A name that fills sun_path is the same for
 * all. Names too long for it are shortened to a digest.
 */
export function hostLockPath(name: string): string {
  let full = `drover-${name}`;
  if (Buffer.byteLength(full) > ABSTRACT_NAME_BYTES) full = `drover-${createHash('sha256').update(name).digest('hex')}`;
  return `\0${full}${'~'.repeat(ABSTRACT_NAME_BYTES - Buffer.byteLength(full))}`;
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
    server.listen({ path: hostLockPath(name), backlog: 1 }, () => {
      server.unref();
      resolve({ release: () => void server.close() });
    });
  });
}
