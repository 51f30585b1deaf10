import {
  coerceError, firePayload, isExcludedDate, nextScheduleFire, publishQueued,
  type DroverMetrics, type DueSchedule, type Fire, type JobStore, type Logger, type ScheduleStore, type Transport,
} from '@drover/core';

/** How long a claimed due schedule is held by one scheduler before another may take it (if the first died). */
export const HOLD_MS = 2000;
export const SCHEDULE_BATCH = 500;

/** Most missed fire times counted for one misfire (the event says "at least" this many). */
export const MISSED_COUNT_MAX = 1000;

/**
 * Decides what a due schedule does now. Handled within the misfire threshold (the scheduler is merely late, say
 * under load): fire for the due time, and the next fire time is the one after it, so every fire time gets its
 * job, catching up if need be. Later than that, no scheduler was running at the fire time: `run-once` fires
 * once, `skip` fires nothing, and the schedule resumes with the first fire time after now; the fire times missed
 * are counted. `@every` intervals keep the phase of the due time. A jittered schedule's jobs start up to jitterMs
 * later (`random` in [0, 1)).
 */
export function planFire(
  d: DueSchedule, now: number, misfireThresholdMs: number, calendarDates?: ReadonlySet<string>, random: () => number = Math.random,
): Omit<Fire, 'payload'> {
  const misfired = now - d.nextRunAt > misfireThresholdMs;
  const opts = { anchorMs: d.nextRunAt, ...(calendarDates ? { calendarDates } : {}) };
  let missed = 0;
  if (misfired) {
    for (let t: number | null = d.nextRunAt; t !== null && t <= now && missed < MISSED_COUNT_MAX; t = nextScheduleFire(d.def, t, opts)) missed++;
  }
  // A calendar may have gained the due time's date since it was computed.
  const excluded = isExcludedDate(d.def, d.nextRunAt, calendarDates);
  const fire = !excluded && (!misfired || d.def.misfire === 'run-once');
  const jitter = d.def.jitterMs ?? 0;
  return {
    name: d.name,
    version: d.version,
    expectedNextRunAt: d.nextRunAt,
    newNextRunAt: nextScheduleFire(d.def, misfired ? now : d.nextRunAt, opts),
    fire,
    misfired,
    runAt: fire && jitter > 0 ? now + Math.floor(random() * (jitter + 1)) : null,
    missed,
  };
}

/** Claims due schedules, fires them in one script per batch, publishes the jobs. Returns how many were due. */
export async function fireDueSchedules(
  deps: { store: JobStore; schedules: ScheduleStore; transport: Transport; log: Logger; metrics: DroverMetrics; random?: () => number },
  now: number,
  misfireThresholdMs: number,
): Promise<number> {
  const due = await deps.schedules.claimDue(now, HOLD_MS, SCHEDULE_BATCH);
  if (due.length === 0) return 0;
  const calendars = due.some((d) => d.def.calendar) ? await deps.schedules.calendars() : new Map<string, { dates: string[] }>();
  const fires: Fire[] = [];
  for (const d of due) {
    const payload = firePayload(d.name, d.def, now);
    const dates = d.def.calendar ? new Set(calendars.get(d.def.calendar)?.dates ?? []) : undefined;
    try {
      fires.push({ ...planFire(d, now, misfireThresholdMs, dates, deps.random), payload });
    } catch (err) {
      // An expression that cannot be evaluated any more (stored before a library change?): stop it, loudly.
      deps.log.error({ err: coerceError(err), schedule: d.name, cron: d.def.cron }, 'cannot compute the next fire time; schedule stops firing');
      fires.push({ name: d.name, version: d.version, expectedNextRunAt: d.nextRunAt, newNextRunAt: null, fire: false, misfired: false, runAt: null, missed: 0, payload });
    }
  }
  const results = await deps.schedules.fire(fires, now);
  // A jittered fire's jobs wait as delayed: the scheduler publishes them when due.
  const queued = results.filter((r) => r.outcome === 'fired' && r.status === 'queued');
  const replaced = results.flatMap((r) => r.replaced);
  const dueAt = new Map(due.map((d) => [d.name, d.nextRunAt]));
  for (const r of results) {
    if (r.outcome !== 'stale') deps.metrics.schedulesFired.inc({ outcome: r.outcome });
    if (r.outcome === 'fired') {
      deps.metrics.scheduleFireLag.observe(Math.max(0, now - (dueAt.get(r.name) ?? now)) / 1000);
      for (const j of r.created) deps.metrics.jobsSubmitted.inc({ queue: j.queue });
    }
    if (r.outcome === 'misfired') deps.log.warn({ schedule: r.name }, 'misfire: fire time missed while no scheduler ran; skipped per policy');
    else if (r.outcome === 'skipped') deps.log.info({ schedule: r.name }, 'previous run still going; fire skipped (overlap=skip)');
  }
  await deps.store.signalCancel(replaced);
  if (queued.length > 0) {
    try {
      await publishQueued(deps.transport, deps.store, queued.flatMap((r) => r.publish));
    } catch (err) {
      deps.log.error({ err: coerceError(err), count: queued.length }, 'publishing fired jobs failed; the outbox sweep will retry');
    }
  }
  return due.length;
}
