/**
 * Wire format shared with native/spawner.c: frames of u32 payload length (LE), u8 type, payload.
 * Kept in one file so the two sides are easy to compare.
 */
export const Command = { Start: 1, Signal: 2, KillUid: 3, Deadline: 4 } as const;
export const Event = { Started: 1, Failed: 2, Output: 3, Exit: 4, Killed: 5 } as const;

/** The protocol version from which the helper takes KillUid; its ready frame (started, id 0) says which it speaks. */
export const KILL_UID_VERSION = 2;
/** From version 3 the helper joins jobs to cgroups, keeps deadlines and flags fenced exits. */
export const CONTAINMENT_VERSION = 3;

/** A cgroup directory the child joins before exec (made by the runner; see containment/cgroups.ts). */
export interface StartCgroup {
  version: 1 | 2;
  dir: string;
}

export interface StartCommand {
  id: number;
  uid: number; // -1: keep
  gid: number; // -1: keep
  /** Supplementary groups; undefined: none given (they are dropped when gid is set). */
  groups?: number[];
  cwd: string;
  argv: string[];
  env: string[];
  limits: { resource: number; soft: bigint; hard: bigint }[];
  /** The uid is the job's own (RUNNER_JOB_UIDS): the helper kills all of it if it must stop every job at once. */
  ownUid?: boolean;
  cgroups?: StartCgroup[];
}

export function encodeStart(c: StartCommand): Buffer {
  const strings = [c.cwd, ...c.argv, ...c.env].map((s) => Buffer.from(s, 'utf8'));
  const cgroups = (c.cgroups ?? []).map((g) => ({ version: g.version, dir: Buffer.from(g.dir, 'utf8') }));
  const groups = c.groups ?? [];
  const size = 4 + 4 + 4 + 4 + groups.length * 4 + 4 + 4 + 4 + strings.reduce((n, b) => n + 4 + b.length, 0) + c.limits.length * 20 +
    1 + 4 + cgroups.reduce((n, g) => n + 1 + 4 + g.dir.length, 0);
  const buf = Buffer.allocUnsafe(5 + size);
  let o = buf.writeUInt32LE(size, 0);
  o = buf.writeUInt8(Command.Start, o);
  o = buf.writeUInt32LE(c.id, o);
  o = buf.writeInt32LE(c.uid, o);
  o = buf.writeInt32LE(c.gid, o);
  o = buf.writeInt32LE(c.groups ? groups.length : -1, o);
  for (const g of groups) o = buf.writeUInt32LE(g, o);
  const putString = (b: Buffer): void => {
    o = buf.writeUInt32LE(b.length, o);
    o += b.copy(buf, o);
  };
  putString(strings[0]!);
  o = buf.writeUInt32LE(c.argv.length, o);
  for (let i = 0; i < c.argv.length; i++) putString(strings[1 + i]!);
  o = buf.writeUInt32LE(c.env.length, o);
  for (let i = 0; i < c.env.length; i++) putString(strings[1 + c.argv.length + i]!);
  o = buf.writeUInt32LE(c.limits.length, o);
  for (const l of c.limits) {
    o = buf.writeUInt32LE(l.resource, o);
    o = buf.writeBigUInt64LE(l.soft, o);
    o = buf.writeBigUInt64LE(l.hard, o);
  }
  o = buf.writeUInt8(c.ownUid ? 1 : 0, o);
  o = buf.writeUInt32LE(cgroups.length, o);
  for (const g of cgroups) {
    o = buf.writeUInt8(g.version, o);
    putString(g.dir);
  }
  return buf;
}

/** A command of one job id and one 32-bit argument (signal number, uid): the frame both small commands share. */
function encodeIdArg(command: (typeof Command)[keyof typeof Command], id: number, arg: number, signed: boolean): Buffer {
  const buf = Buffer.allocUnsafe(13);
  buf.writeUInt32LE(8, 0);
  buf.writeUInt8(command, 4);
  buf.writeUInt32LE(id, 5);
  if (signed) buf.writeInt32LE(arg, 9);
  else buf.writeUInt32LE(arg, 9);
  return buf;
}

export function encodeSignal(id: number, signo: number): Buffer {
  return encodeIdArg(Command.Signal, id, signo, true);
}

/** Unless renewed within `ms`, the helper kills the job whole and flags its exit as fenced. */
export function encodeDeadline(id: number, ms: number): Buffer {
  return encodeIdArg(Command.Deadline, id, Math.max(0, Math.min(0xffffffff, Math.round(ms))), false);
}

/** Every process of `uid` gets SIGKILL; answered by a `killed` event with the same id. */
export function encodeKillUid(id: number, uid: number): Buffer {
  return encodeIdArg(Command.KillUid, id, uid, false);
}

export type SpawnerEvent =
  | { type: 'started'; id: number; pid: number; version: number }
  | { type: 'killed'; id: number; errno: number }
  | { type: 'failed'; id: number; errno: number }
  | { type: 'output'; id: number; stream: 'stdout' | 'stderr'; data: Buffer }
  | { type: 'exit'; id: number; code: number; signal: number; userUs: number; systemUs: number; maxRssKb: number; fenced: boolean };

/** Splits the helper's byte stream into events. Output payloads are views into the read chunk, not copies. */
export class FrameDecoder {
  private rest: Buffer | undefined;

  *push(chunk: Buffer): Generator<SpawnerEvent> {
    const buf = this.rest ? Buffer.concat([this.rest, chunk]) : chunk;
    this.rest = undefined;
    let o = 0;
    while (buf.length - o >= 5) {
      const len = buf.readUInt32LE(o);
      if (buf.length - o < 5 + len) break;
      const type = buf.readUInt8(o + 4);
      const p = o + 5;
      const id = buf.readUInt32LE(p);
      switch (type) {
        case Event.Started:
          // Helpers before version 2 sent no version.
          yield { type: 'started', id, pid: buf.readInt32LE(p + 4), version: len >= 12 ? buf.readUInt32LE(p + 8) : 1 };
          break;
        case Event.Killed:
          yield { type: 'killed', id, errno: buf.readInt32LE(p + 4) };
          break;
        case Event.Failed:
          yield { type: 'failed', id, errno: buf.readInt32LE(p + 4) };
          break;
        case Event.Output:
          yield { type: 'output', id, stream: buf.readUInt8(p + 4) === 2 ? 'stderr' : 'stdout', data: buf.subarray(p + 5, p + len) };
          break;
        case Event.Exit:
          yield {
            type: 'exit', id,
            code: buf.readInt32LE(p + 4),
            signal: buf.readInt32LE(p + 8),
            userUs: Number(buf.readBigInt64LE(p + 12)),
            systemUs: Number(buf.readBigInt64LE(p + 20)),
            maxRssKb: Number(buf.readBigInt64LE(p + 28)),
            fenced: len >= 40 && (buf.readUInt32LE(p + 36) & 1) === 1,
          };
          break;
      }
      o = p + len;
    }
    if (o < buf.length) {
      // Copy the partial frame so the rest of the chunk can be freed.
      this.rest = Buffer.from(buf.subarray(o));
    }
  }
}
