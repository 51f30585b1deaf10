import { readFileSync } from 'node:fs';
import { DroverError, type UidRange } from '@drover/core';
import { DEFAULT_JOB_UIDS } from './job-uids.js';

/**
 * Who a job runs as. Unset ids keep the runner's own; `login` is set when the job runs as a named user, whose
 * HOME, USER, LOGNAME and SHELL it then gets instead of the runner's.
 */
export interface Identity {
  uid?: number;
  gid?: number;
  /** Supplementary groups, as initgroups(3) sets them for a login: every group of /etc/group listing the user. */
  groups?: number[];
  login?: { user: string; home: string; shell: string };
}

/** The login shell of a user whose passwd entry names none, and of a uid of its own (which has no entry). */
export const DEFAULT_SHELL = '/bin/sh';

/** A named user the runner can switch to: everything a job needs to run as them. */
export type JobUser = Required<Identity>;

/** Where users and groups come from, and what this process may do; tests substitute their own. */
export interface UserDatabase {
  passwd: string;
  group: string;
  /** The runner's effective uid, and the capabilities it lacks to run and manage jobs as another user. */
  self: { uid: number; missingCaps: string[] };
  /** The ids this process's user namespace can use (/proc/self/uid_map, gid_map); unset: all. */
  uidMap?: string;
  gidMap?: string;
}

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
  return {
    passwd: '/etc/passwd', group: '/etc/group', uidMap: '/proc/self/uid_map', gidMap: '/proc/self/gid_map',
    self: { uid: process.geteuid?.() ?? -1, missingCaps: missingCapabilities() },
  };
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
  const [user = name, , uid, gid, , home = '/', shell = ''] = pw;
  // An empty shell field means /bin/sh (passwd(5)), as login(1) reads it.
  const login = { user, home: home || '/', shell: shell.trim() || DEFAULT_SHELL };
  return { uid: Number(uid), gid: Number(gid), groups: supplementaryGroups(db.group, user, Number(gid)), login };
}

/**
 * What the runner decided about its jobs' default user: one user for all (undefined: the runner's own), or `uids`,
 * a range from which every job gets a uid of its own; and what to tell the operator.
 */
export interface JobUserChoice {
  user: JobUser | undefined;
  uids?: UidRange;
  warning?: string;
}

const SAME_USER_RISK =
  "so a job can read the runner's environment, memory and secret files (REDIS_URL, tokens, keys). To keep them from jobs, " +
  'run the runner as root: each job then runs as a uid of its own (RUNNER_JOB_UIDS), or as RUNNER_JOB_USER; or use the shipped container image';

/**
 * Decides whom jobs run as when they name no `user`. A runner that may switch users runs each job as a uid of its
 * own (RUNNER_JOB_UIDS, default DEFAULT_JOB_UIDS) unless RUNNER_JOB_USER names one user for all of them, root only
 * by name; one that may not runs them as itself and says what that exposes. Throws a CONFIG error an operator can
 * act on when the choice cannot be honoured.
 */
export function chooseJobUser(setting: string | undefined, db: UserDatabase = systemUsers(), uids?: UidRange): JobUserChoice {
  const canSwitch = db.self.missingCaps.length === 0;
  const lacks = `it lacks ${db.self.missingCaps.join(', ')}`;
  if (setting === undefined && canSwitch) return { user: undefined, uids: checkedJobUids(db, uids) };
  if (setting === undefined && uids) {
    throw configError(
      `RUNNER_JOB_UIDS is set, but this runner (uid ${db.self.uid}) cannot run jobs as another user (${lacks}); ` +
        "start it as root, or leave RUNNER_JOB_UIDS unset to run jobs as the runner's own user",
    );
  }
  if (setting === undefined && db.self.uid === 0) {
    // Root that dropped capabilities (a hardened container): its jobs would be root, which needs the opt-in.
    throw configError(
      `the runner runs as root but cannot run jobs as another user (${lacks}), so its jobs would run as root; ` +
        `grant it ${Object.keys(SWITCH_CAPABILITIES).join(', ')}, or set RUNNER_JOB_USER=root to run jobs as root`,
    );
  }
  if (setting === undefined) {
    return { user: undefined, warning: `jobs run as this runner's own user (uid ${db.self.uid}), ${SAME_USER_RISK}` };
  }
  const user = namedUser(db, setting);
  if (!user) throw configError(`RUNNER_JOB_USER names "${setting}", but ${db.passwd} has no such user`);
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
      `RUNNER_JOB_USER names "${setting}" (uid ${user.uid}), but this runner (uid ${db.self.uid}) cannot run jobs as another user (${lacks}); ` +
        "start it as root, or leave RUNNER_JOB_USER unset to run jobs as the runner's own user",
    );
  }
  return { user };
}

/** The ranges of ids a user namespace map file (`inside outside count` lines) makes usable. */
function mappedRanges(file: string | undefined): UidRange[] | undefined {
  if (file === undefined) return undefined;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return undefined; // no user namespaces here: every id is usable
  }
  const ranges = text.split('\n').map((l) => l.trim().split(/\s+/).map(Number)).filter((f) => f.length === 3 && f.every(Number.isSafeInteger))
    .map(([inside, , count]) => ({ first: inside!, last: inside! + count! - 1 })).sort((a, b) => a.first - b.first);
  // Adjacent lines make one range.
  const merged: UidRange[] = [];
  for (const r of ranges) {
    const prev = merged.at(-1);
    if (prev && r.first <= prev.last + 1) prev.last = Math.max(prev.last, r.last);
    else merged.push({ ...r });
  }
  return merged;
}

/** Ids of `file` (passwd or group) that fall in the range: such ids belong to someone and are never a job's. */
function namedIdsIn(file: string, range: UidRange): string[] {
  const found: string[] = [];
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const [name, , id] = line.split(':');
    if (id !== undefined && /^\d+$/.test(id) && Number(id) >= range.first && Number(id) <= range.last) found.push(`${name} (${id})`);
  }
  return found;
}

/**
 * The range per-job uids come from, checked against the system: it must hold no user of /etc/passwd and no group of
 * /etc/group (a job would run as them, and every process of a job uid is killed before and after each job), and
 * this user namespace must map all of it (else setuid fails for every job).
 */
function checkedJobUids(db: UserDatabase, setting: UidRange | undefined): UidRange {
  const range = setting ?? DEFAULT_JOB_UIDS;
  const what = setting ? `RUNNER_JOB_UIDS ${range.first}-${range.last}` : `the default job uids ${range.first}-${range.last} (RUNNER_JOB_UIDS)`;
  const named = [...namedIdsIn(db.passwd, range).map((u) => `user ${u}`), ...namedIdsIn(db.group, range).map((g) => `group ${g}`)];
  if (named.length > 0) {
    throw configError(`${what} must belong to Drover's jobs alone, but it holds ${named.slice(0, 3).join(', ')}${named.length > 3 ? ', ...' : ''}; choose a range no user or group has`);
  }
  for (const [file, kind] of [[db.uidMap, 'uid'], [db.gidMap, 'gid']] as const) {
    const mapped = mappedRanges(file);
    if (mapped && !mapped.some((m) => m.first <= range.first && range.last <= m.last)) {
      throw configError(
        `${what} lies outside the ${kind}s this user namespace maps (${file}: ${mapped.map((m) => `${m.first}-${m.last}`).join(', ') || 'none'}); ` +
          'set RUNNER_JOB_UIDS to a mapped range, or RUNNER_JOB_USER to one user for all jobs',
      );
    }
  }
  return range;
}

/**
 * Who a job runs as when it gets a uid of its own: the same number as its group, no other group, its directory as
 * HOME, and /bin/sh as SHELL (such a uid has no passwd entry; /bin/sh is what an empty shell field means there).
 */
export function perJobIdentity(uid: number, home: string): JobUser {
  return { uid, gid: uid, groups: [], login: { user: `drover-${uid}`, home, shell: DEFAULT_SHELL } };
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

/** HOME, USER, LOGNAME and SHELL of the job's user, where it runs as a named one (else the runner's passthrough stands). */
export function loginEnv(identity: Identity): Record<string, string> {
  const login = identity.login;
  return login ? { HOME: login.home, USER: login.user, LOGNAME: login.user, SHELL: login.shell } : {};
}
