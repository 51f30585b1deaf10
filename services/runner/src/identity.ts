import { readFileSync } from 'node:fs';
import { DroverError } from '@drover/core';

/**
 * Who a job runs as. Unset ids keep the runner's own; `login` is set when the job runs as a named user, whose
 * HOME, USER and LOGNAME it then gets instead of the runner's.
 */
export interface Identity {
  uid?: number;
  gid?: number;
  /** Supplementary groups, as initgroups(3) sets them for a login: every group of /etc/group listing the user. */
  groups?: number[];
  login?: { user: string; home: string };
}

/** A named user the runner can switch to: everything a job needs to run as them. */
export type JobUser = Required<Identity>;

/** Where users and groups come from, and what this process may do; tests substitute their own. */
export interface UserDatabase {
  passwd: string;
  group: string;
  /** The runner's effective uid, and the capabilities it lacks to run and manage jobs as another user. */
  self: { uid: number; missingCaps: string[] };
}

/** The unprivileged user jobs of a root runner run as unless RUNNER_JOB_USER says otherwise. */
export const DEFAULT_JOB_USER = 'nobody';

/**
 * What running jobs as another user takes (capability numbers of linux/capability.h): switching ids, handing the
 * job its directory, signalling its processes, and removing what it left in a directory that is now its own.
 */
export const SWITCH_CAPABILITIES = { CAP_CHOWN: 0, CAP_DAC_OVERRIDE: 1, CAP_KILL: 5, CAP_SETGID: 6, CAP_SETUID: 7 } as const;

/** The capabilities of SWITCH_CAPABILITIES this process lacks (root normally has all; a container may have dropped some). */
function missingCapabilities(): string[] {
  let caps = 0n;
  try {
    const line = readFileSync('/proc/self/status', 'utf8').split('\n').find((l) => l.startsWith('CapEff:'));
    caps = BigInt(`0x${line?.slice('CapEff:'.length).trim() ?? '0'}`);
  } catch {
    if (process.geteuid?.() === 0) return [];
  }
  return Object.entries(SWITCH_CAPABILITIES).filter(([, bit]) => (caps & (1n << BigInt(bit))) === 0n).map(([name]) => name);
}

export function systemUsers(): UserDatabase {
  return { passwd: '/etc/passwd', group: '/etc/group', self: { uid: process.geteuid?.() ?? -1, missingCaps: missingCapabilities() } };
}

/** The fields of the line whose name (or, for a number, whose id) matches. No native addon, no NSS: files only. */
function lookup(file: string, name: string): string[] | undefined {
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const fields = line.split(':');
    if (fields[0] === name || (/^\d+$/.test(name) && fields[2] === name)) return fields;
  }
  return undefined;
}

function supplementaryGroups(file: string, user: string, primary: number): number[] {
  const groups = new Set([primary]);
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const [, , gid, members] = line.split(':');
    if (gid !== undefined && /^\d+$/.test(gid) && members?.split(',').includes(user)) groups.add(Number(gid));
  }
  return [...groups];
}

function namedUser(db: Pick<UserDatabase, 'passwd' | 'group'>, name: string): JobUser | undefined {
  const pw = lookup(db.passwd, name);
  if (!pw || !/^\d+$/.test(pw[2] ?? '') || !/^\d+$/.test(pw[3] ?? '')) return undefined;
  const [user = name, , uid, gid, , home = '/'] = pw;
  return { uid: Number(uid), gid: Number(gid), groups: supplementaryGroups(db.group, user, Number(gid)), login: { user, home: home || '/' } };
}

/** What the runner decided about its jobs' default user: the user (undefined: the runner's own) and what to tell the operator. */
export interface JobUserChoice {
  user: JobUser | undefined;
  warning?: string;
}

const SAME_USER_RISK =
  "so a job can read the runner's environment, memory and secret files (REDIS_URL, tokens, keys). To keep them from jobs, " +
  'run the runner as root with RUNNER_JOB_USER set to an unprivileged user (default nobody), or use the shipped container image';

/**
 * Decides whom jobs run as when they name no `user` (RUNNER_JOB_USER). A runner that may switch users runs them as
 * `nobody` unless told otherwise, and as root only when RUNNER_JOB_USER=root says so; one that may not runs them as
 * itself and says what that exposes. Throws a CONFIG error an operator can act on when the choice cannot be honoured.
 */
export function chooseJobUser(setting: string | undefined, db: UserDatabase = systemUsers()): JobUserChoice {
  const canSwitch = db.self.missingCaps.length === 0;
  const lacks = `it lacks ${db.self.missingCaps.join(', ')}`;
  const name = setting ?? (canSwitch ? DEFAULT_JOB_USER : undefined);
  if (name === undefined && db.self.uid === 0) {
    // Root that dropped capabilities (a hardened container): its jobs would be root, which needs the opt-in.
    throw configError(
      `the runner runs as root but cannot run jobs as another user (${lacks}), so its jobs would run as root; ` +
        `grant it ${Object.keys(SWITCH_CAPABILITIES).join(', ')}, or set RUNNER_JOB_USER=root to run jobs as root`,
    );
  }
  if (name === undefined) {
    return { user: undefined, warning: `jobs run as this runner's own user (uid ${db.self.uid}), ${SAME_USER_RISK}` };
  }
  const user = namedUser(db, name);
  if (!user) {
    const why = setting === undefined
      ? `the runner may switch users, so jobs run as the unprivileged user "${DEFAULT_JOB_USER}" by default, but ${db.passwd} has no such user; ` +
        'create it, name another user with RUNNER_JOB_USER, or run jobs as root with RUNNER_JOB_USER=root'
      : `RUNNER_JOB_USER names "${name}", but ${db.passwd} has no such user`;
    throw configError(why);
  }
  if (user.uid === db.self.uid) {
    // The runner's own user, named explicitly (root included). Without the capabilities even setgroups() to the
    // same groups fails, so such a runner keeps its ids as they are.
    const warning = user.uid === 0
      ? "jobs run as root (RUNNER_JOB_USER=root): they can read the runner's environment, memory and secret files"
      : `jobs run as this runner's own user (${user.login.user}), ${SAME_USER_RISK}`;
    return { user: canSwitch ? user : undefined, warning };
  }
  if (!canSwitch) {
    throw configError(
      `RUNNER_JOB_USER names "${name}" (uid ${user.uid}), but this runner (uid ${db.self.uid}) cannot run jobs as another user (${lacks}); ` +
        "start it as root, or leave RUNNER_JOB_USER unset to run jobs as the runner's own user",
    );
  }
  return { user };
}

function configError(problem: string): DroverError {
  return new DroverError('CONFIG', `Invalid configuration:\n  - ${problem}`, [problem]);
}

/**
 * The identity one job runs as: its own `user`/`group` when the runner's allow-list grants them (a `user` brings
 * its groups and login, a `group` replaces only the primary group), else the runner's default job user. Throws
 * with a reason a person can act on when the runner does not allow it or the system does not know it.
 */
export function resolveIdentity(
  spec: { user?: string; group?: string },
  allowed: { users: string[]; groups: string[] },
  jobUser: JobUser | undefined,
  db: Pick<UserDatabase, 'passwd' | 'group'> = { passwd: '/etc/passwd', group: '/etc/group' },
): Identity {
  let id: Identity = jobUser ? { ...jobUser } : {};
  if (spec.user !== undefined) {
    if (!allowed.users.includes(spec.user)) throw new Error(`user "${spec.user}" is not allowed on this runner (RUNNER_ALLOWED_USERS)`);
    const user = namedUser(db, spec.user);
    if (!user) throw new Error(`unknown user "${spec.user}"`);
    id = user;
  }
  if (spec.group !== undefined) {
    if (!allowed.groups.includes(spec.group)) throw new Error(`group "${spec.group}" is not allowed on this runner (RUNNER_ALLOWED_GROUPS)`);
    const gr = lookup(db.group, spec.group);
    if (!gr || !/^\d+$/.test(gr[2] ?? '')) throw new Error(`unknown group "${spec.group}"`);
    id.gid = Number(gr[2]);
  }
  return id;
}

/** HOME, USER and LOGNAME of the job's user, where it runs as a named one (else the runner's passthrough stands). */
export function loginEnv(identity: Identity): Record<string, string> {
  const login = identity.login;
  return login ? { HOME: login.home, USER: login.user, LOGNAME: login.user } : {};
}
