import type { Redis, Result } from 'ioredis';
import { sealEnvOf, type EnvCipher } from '../env-cipher.js';
import { DroverError } from '../errors.js';
import { defineScripts } from '../redis.js';
import { scheduleFromHash, type ScheduleDef, type ScheduleRecord } from '../model/schedule.js';
import { DEFAULT_SPEC_DEFAULTS, normalizeJobSpec, type JobSpec, type JobTemplate } from '../model/job-spec.js';
import { planWorkflow } from '../model/workflow.js';
import { newJobId } from '../ids.js';
import type { WorkflowRecord } from './workflow-store.js';
import type { Keys } from './keys.js';
import * as scripts from './schedule-scripts.js';
import { createMeta, idempotencyKeyReused, type Page } from './job-store.js';
import { claimArg, replayOf, type IdempotencyClaim, type Replay } from './idempotency.js';

declare module 'ioredis' {
  interface RedisCommander<Context> {
    droverSchedPut(...args: (string | number)[]): Result<number, Context>;
    droverSchedSetEnabled(...args: (string | number)[]): Result<string[], Context>;
    droverSchedDelete(...args: (string | number)[]): Result<(string | number)[], Context>;
    droverSchedClaimDue(...args: (string | number)[]): Result<string[], Context>;
    droverSchedFire(...args: (string | number)[]): Result<string[], Context>;
    droverSchedTrigger(...args: (string | number)[]): Result<string[], Context>;
  }
}

const COMMANDS: Record<string, string> = {
  droverSchedPut: scripts.SCHED_PUT,
  droverSchedSetEnabled: scripts.SCHED_SET_ENABLED,
  droverSchedDelete: scripts.SCHED_DELETE,
  droverSchedClaimDue: scripts.SCHED_CLAIM_DUE,
  droverSchedFire: scripts.SCHED_FIRE,
  droverSchedTrigger: scripts.SCHED_TRIGGER,
};

export interface DueSchedule {
  name: string;
  nextRunAt: number;
  version: string;
  def: ScheduleDef;
}

export interface Fire {
  name: string;
  version: string;
  /** The fire time being handled (the schedule's nextRunAt when it was claimed). */
  expectedNextRunAt: number;
  newNextRunAt: number | null;
  /** False when a misfire policy says to fire nothing for this time. */
  fire: boolean;
  misfired: boolean;
  /** When the fire's jobs start if jittered (they wait as delayed until then); null for now. */
  runAt: number | null;
  /** For a misfire: how many fire times were missed. */
  missed: number;
  payload: FirePayload;
}

/** A fire time that made no job: skipped by overlap=skip, or missed while no scheduler ran (misfired). */
export interface UnfiredRun {
  state: 'skipped' | 'misfired';
  scheduledFor: string;
  recordedAt: string;
  /** misfired: the fire times missed, and whether run-once fired one for them. */
  missed?: number;
  fired?: boolean;
  /** skipped: the runs still going. */
  runningJobs?: string[];
}

/** An unfired fire time among a schedule's runs (GET /v1/schedules/:name/runs): `status` is its state. */
export type UnfiredRunItem = UnfiredRun & { kind: 'unfired'; status: UnfiredRun['state'] };

/** A named set of dates (YYYY-MM-DD) on which the schedules referencing it do not fire. */
export interface CalendarRecord {
  name: string;
  dates: string[];
  updatedAt: string;
}

/** What one fire (or trigger) creates: the jobs of a job schedule (one per replica), or a workflow run. */
export interface FirePayload {
  /** Job schedule: one id per replica. */
  jobIds: string[];
  spec: JobSpec | null;
  /** Workflow schedule: the run's record and its step jobs, created by the script in one step. */
  bundle: string | null;
  /** Jobs to publish once created (a workflow's first steps; the others wait for their dependencies). */
  publish: { id: string; queue: string }[];
  /** Every job the fire creates, with its queue (for counting). */
  created: { id: string; queue: string }[];
}

/** Builds the payload of a fire from a schedule's definition; `template` overrides the job's fields (trigger). */
export function firePayload(name: string, def: ScheduleDef, now: number, template?: Partial<JobTemplate>): FirePayload {
  if (def.workflow) {
    const id = newJobId(now);
    const steps = def.workflow.steps;
    const { concurrency } = def.workflow;
    const plan = planWorkflow(id, steps, new Set(steps.map((s) => s.name)), {}, DEFAULT_SPEC_DEFAULTS, () => newJobId(now), concurrency);
    const at = new Date(now).toISOString();
    const doc: WorkflowRecord = { id, name, schedule: name, steps, ...(concurrency ? { concurrency } : {}), createdAt: at, jobs: plan.fresh, runs: [{ run: 1, mode: 'start', at, steps: plan.fresh }] };
    const jobs = plan.jobs.map((j) => {
      const meta = createMeta(j);
      return { id: j.id, queue: j.spec.queue, spec: JSON.stringify(j.spec), meta: meta ? (JSON.parse(meta) as unknown) : {} };
    });
    const roots = plan.jobs.filter((j) => !j.spec.dependsOn).map((j) => ({ id: j.id, queue: j.spec.queue }));
    const created = plan.jobs.map((j) => ({ id: j.id, queue: j.spec.queue }));
    return { jobIds: created.map((j) => j.id), spec: null, bundle: JSON.stringify({ workflowId: id, doc: JSON.stringify(doc), jobs }), publish: roots, created };
  }
  const spec = normalizeJobSpec({ ...def.job, ...template }, DEFAULT_SPEC_DEFAULTS);
  const jobIds = Array.from({ length: spec.replicas ?? 1 }, () => newJobId(now));
  const created = jobIds.map((id) => ({ id, queue: spec.queue }));
  return { jobIds, spec, bundle: null, publish: created, created };
}

/** A definition with the env of its job, or of each workflow step's job, sealed. */
export function sealDef<T extends Pick<ScheduleDef, 'job' | 'workflow'>>(cipher: EnvCipher | undefined, def: T): T {
  if (!cipher) return def;
  const out = { ...def };
  if (def.job) out.job = sealEnvOf(cipher, def.job);
  if (def.workflow) out.workflow = { ...def.workflow, steps: def.workflow.steps.map((s) => ({ ...s, job: sealEnvOf(cipher, s.job) })) };
  return out;
}

/** The script arguments of a payload: ids, queue, spec, meta (or '', '', bundle, 'bundle'). */
function payloadArgs(p: FirePayload): string[] {
  if (p.bundle) return ['', '', p.bundle, 'bundle'];
  return [p.jobIds.join(','), p.spec!.queue, JSON.stringify(p.spec), createMeta({ id: p.jobIds[0]!, spec: p.spec! })];
}

export interface FireResult {
  name: string;
  outcome: 'fired' | 'skipped' | 'misfired' | 'excluded' | 'stale';
  /** The jobs to publish when fired. */
  publish: { id: string; queue: string }[];
  /** Every job the fire created. */
  created: { id: string; queue: string }[];
  status: string;
  /** Running jobs flagged for cancel by overlap=replace; their runners must be told. */
  replaced: string[];
}

/** Schedules in Redis: definitions, due index, run links. Firing is split: claim due (script), compute (JS), fire (script). */
export class ScheduleStore {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
    /** Seals env values of the templates it stores and of manual runs (DROVER_ENV_KEY). */
    private readonly envCipher?: EnvCipher,
  ) {
    defineScripts(redis, COMMANDS);
  }

  /** A definition with its templates' env sealed as stored ones are (a manual run's overrides come in plain text). */
  seal<T extends Pick<ScheduleDef, 'job' | 'workflow'>>(def: T): T {
    return sealDef(this.envCipher, def);
  }

  private key(name: string): string {
    return this.keys.name('schedule', name);
  }

  /** Returns false when the name is taken (create) or unknown (update). */
  async put(mode: 'create' | 'update', name: string, def: ScheduleDef, enabled: boolean, nextRunAt: number | null, now = Date.now()): Promise<boolean> {
    const r = await this.redis.droverSchedPut(this.keys.routing, name, JSON.stringify(sealDef(this.envCipher, def)), enabled ? '1' : '0', nextRunAt ?? '', now, mode);
    return r === 1;
  }

  async get(name: string): Promise<ScheduleRecord | null> {
    const [h, running] = await Promise.all([this.redis.hgetall(this.key(name)), this.redis.smembers(`${this.key(name)}:running`)]);
    return h.def ? scheduleFromHash(name, h, running) : null;
  }

  async list(cursor: string | undefined, limit: number): Promise<Page<ScheduleRecord>> {
    const min = cursor ? `(${cursor}` : '-';
    const names = await this.redis.zrangebylex(this.keys.name('schedules'), min, '+', 'LIMIT', 0, limit + 1);
    const page = names.slice(0, limit);
    const pipe = this.redis.pipeline();
    for (const n of page) pipe.hgetall(this.key(n)).smembers(`${this.key(n)}:running`);
    const rows = (await pipe.exec()) ?? [];
    const items: ScheduleRecord[] = [];
    page.forEach((n, i) => {
      const h = rows[i * 2]?.[1] as Record<string, string> | undefined;
      if (h?.def) items.push(scheduleFromHash(n, h, (rows[i * 2 + 1]?.[1] as string[]) ?? []));
    });
    return { items, nextCursor: names.length > limit ? (page[page.length - 1] ?? null) : null };
  }

  /** Enables or disables several schedules at once; throws NOT_FOUND (and changes nothing) if any is unknown. */
  async setEnabled(changes: { name: string; enabled: boolean; nextRunAt: number | null }[], now = Date.now()): Promise<void> {
    const args: (string | number)[] = [this.keys.routing, now];
    for (const c of changes) args.push(c.name, c.enabled ? '1' : '0', c.nextRunAt ?? '');
    const missing = await this.redis.droverSchedSetEnabled(...args);
    if (missing.length > 0) throw new DroverError('NOT_FOUND', `no schedule ${missing.join(', ')}`, { missing });
  }

  /** Deletes; with kill, cancels its unfinished jobs. Returns null if unknown, else the jobs cancelled and flagged. */
  async delete(name: string, kill: boolean, now = Date.now()): Promise<{ cancelled: string[]; flagged: string[] } | null> {
    const r = (await this.redis.droverSchedDelete(this.keys.routing, name, kill ? 1 : 0, now)).map(String);
    if (r[0] !== '1') return null;
    const sep = r.indexOf('|');
    return { cancelled: r.slice(1, sep), flagged: r.slice(sep + 1) };
  }

  async runs(name: string, cursor: string | undefined, limit: number): Promise<{ ids: string[]; nextCursor: string | null }> {
    const max = cursor ? `(${cursor}` : '+';
    const ids = await this.redis.zrevrangebylex(`${this.key(name)}:runs`, max, '-', 'LIMIT', 0, limit + 1);
    const page = ids.slice(0, limit);
    return { ids: page, nextCursor: ids.length > limit ? (page[page.length - 1] ?? null) : null };
  }

  /** The fire times that made no job (skipped, misfired), newest first (the last UNFIRED_MAX). */
  async unfired(name: string): Promise<UnfiredRun[]> {
    const rows = await this.redis.lrange(`${this.key(name)}:unfired`, 0, -1);
    return rows.map((r) => {
      const d = JSON.parse(r) as { state: UnfiredRun['state']; scheduledFor: number; recordedAt: number; missed?: number; fired?: boolean; runningJobs?: string[] };
      return {
        state: d.state, scheduledFor: new Date(d.scheduledFor).toISOString(), recordedAt: new Date(d.recordedAt).toISOString(),
        ...(d.missed !== undefined ? { missed: d.missed, fired: d.fired ?? false } : {}),
        ...(d.runningJobs ? { runningJobs: [...d.runningJobs].sort() } : {}),
      };
    });
  }

  async putCalendar(name: string, dates: string[], now = Date.now()): Promise<CalendarRecord> {
    const rec = { dates: [...new Set(dates)].sort(), updatedAt: now };
    await this.redis.hset(this.keys.calendars, name, JSON.stringify(rec));
    return { name, dates: rec.dates, updatedAt: new Date(now).toISOString() };
  }

  /** Returns false when there was no such calendar. */
  async deleteCalendar(name: string): Promise<boolean> {
    return (await this.redis.hdel(this.keys.calendars, name)) === 1;
  }

  /** Every calendar, by name. */
  async calendars(): Promise<Map<string, CalendarRecord>> {
    const h = await this.redis.hgetall(this.keys.calendars);
    const out = new Map<string, CalendarRecord>();
    for (const name of Object.keys(h).sort()) {
      const d = JSON.parse(h[name]!) as { dates: string[]; updatedAt: number };
      out.set(name, { name, dates: d.dates, updatedAt: new Date(d.updatedAt).toISOString() });
    }
    return out;
  }

  /** The dates of one calendar (empty when it does not exist: a schedule naming a deleted calendar fires as if none). */
  async calendarDates(name: string | undefined): Promise<Set<string>> {
    if (!name) return new Set();
    const raw = await this.redis.hget(this.keys.calendars, name);
    return new Set(raw ? (JSON.parse(raw) as { dates: string[] }).dates : []);
  }

  async claimDue(now: number, holdMs: number, limit: number): Promise<DueSchedule[]> {
    const flat = await this.redis.droverSchedClaimDue(this.keys.routing, now, now + holdMs, limit);
    const out: DueSchedule[] = [];
    for (let i = 0; i + 3 < flat.length; i += 4) {
      if (!flat[i + 3]) continue; // deleted meanwhile
      out.push({ name: flat[i]!, nextRunAt: Number(flat[i + 1]), version: flat[i + 2]!, def: JSON.parse(flat[i + 3]!) as ScheduleDef });
    }
    return out;
  }

  async fire(fires: Fire[], now = Date.now()): Promise<FireResult[]> {
    if (fires.length === 0) return [];
    const args: (string | number)[] = [this.keys.routing, now];
    for (const f of fires) {
      args.push(f.name, f.version, f.expectedNextRunAt, f.newNextRunAt ?? '', f.fire ? 1 : 0, f.misfired ? 1 : 0, f.runAt ?? '', f.missed, ...payloadArgs(f.payload));
    }
    const flat = await this.redis.droverSchedFire(...args);
    return fires.map((f, i) => ({
      name: f.name,
      outcome: flat[i * 4 + 1] as FireResult['outcome'],
      publish: f.payload.publish,
      created: f.payload.created,
      status: flat[i * 4 + 2] ?? '',
      replaced: flat[i * 4 + 3] ? flat[i * 4 + 3]!.split(',') : [],
    }));
  }

  /** A manual run now (or at runAt). Returns the first job's status, or null if the schedule is unknown. */
  async trigger(name: string, payload: FirePayload, runAt: number | null, now = Date.now()): Promise<string | null> {
    const outcome = await this.triggerOnce(name, payload, runAt, undefined, now);
    return outcome.replayed ? null : outcome.status;
  }

  /**
   * `trigger` made safe to retry with an Idempotency-Key: a key seen before fires nothing and answers the run it
   * fired then (`replayed`); a key that came with another request is IDEMPOTENCY_KEY_REUSED; a new key is bound to
   * the run in the same atomic step that creates it.
   */
  async triggerOnce(name: string, payload: FirePayload, runAt: number | null, idempotency: IdempotencyClaim | undefined, now = Date.now()): Promise<{ replayed: false; status: string | null } | ({ replayed: true } & Replay)> {
    // A manual run may carry env overrides given in plain text.
    const sealed = payload.spec ? { ...payload, spec: sealEnvOf(this.envCipher, payload.spec) } : payload;
    const [ids, queue, spec, meta] = payloadArgs(sealed);
    const idem = idempotency ? JSON.stringify(claimArg(idempotency)) : '';
    const out = await this.redis.droverSchedTrigger(this.keys.routing, name, now, ids!, queue!, spec!, runAt ?? '', meta!, idem);
    const seen = replayOf(out);
    if (seen === 'reused') throw idempotencyKeyReused();
    if (seen) return { replayed: true, ...seen };
    return { replayed: false, status: out[0] || null };
  }
}
