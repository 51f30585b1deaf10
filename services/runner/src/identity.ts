import { readFileSync } from 'node:fs';

/** uid/gid for a job's `user`/`group`, from /etc/passwd and /etc/group (no native addon needed). */
export interface Identity {
  uid?: number;
  gid?: number;
}

function lookup(file: string, name: string): string[] | undefined {
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const fields = line.split(':');
    if (fields[0] === name || (/^\d+$/.test(name) && fields[2] === name)) return fields;
  }
  return undefined;
}

/**
 * Resolves and authorises the identity a job asks for. Throws with a reason a person can act on when the
 * runner does not allow it or the system does not know it. A user without a group runs with its primary group.
 */
export function resolveIdentity(spec: { user?: string; group?: string }, allowed: { users: string[]; groups: string[] }): Identity {
  const id: Identity = {};
  if (spec.user !== undefined) {
    if (!allowed.users.includes(spec.user)) throw new Error(`user "${spec.user}" is not allowed on this runner (RUNNER_ALLOWED_USERS)`);
    const pw = lookup('/etc/passwd', spec.user);
    if (!pw) throw new Error(`unknown user "${spec.user}"`);
    id.uid = Number(pw[2]);
    id.gid = Number(pw[3]);
  }
  if (spec.group !== undefined) {
    if (!allowed.groups.includes(spec.group)) throw new Error(`group "${spec.group}" is not allowed on this runner (RUNNER_ALLOWED_GROUPS)`);
    const gr = lookup('/etc/group', spec.group);
    if (!gr) throw new Error(`unknown group "${spec.group}"`);
    id.gid = Number(gr[2]);
  }
  return id;
}
