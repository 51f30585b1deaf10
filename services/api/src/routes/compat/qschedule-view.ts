import type { JobRecord, ScheduleRecord } from '@drover/core';

/**
 * qschedule's `lastState` codes: 100 starting, 200 started, 300 done, 400 ignored, -100 failed, -200 no runner found,
 * -300 rejected (a worker's queue was full), 0 init (never ran).
 */
export const QS_STATE = { init: 0, starting: 100, started: 200, done: 300, ignored: 400, failed: -100, noRunner: -200 } as const;

/**
 * The qschedule code of a schedule's latest run: its running or waiting job if it has one (`current`), else how its
 * last run ended. Drover never rejects a job for a full runner (it waits in its queue), so -300 never appears.
 */
export function qscheduleState(s: ScheduleRecord, current: JobRecord | undefined, served: boolean): number {
  if (current) {
    if (current.status === 'running') return QS_STATE.started;
    return served ? QS_STATE.starting : QS_STATE.noRunner;
  }
  switch (s.lastState) {
    case null: return QS_STATE.init;
    case 'succeeded': return QS_STATE.done;
    case 'cancelled': return QS_STATE.ignored;
    default: return QS_STATE.failed; // failed, timed_out, lost
  }
}

const ms = (iso: string | null | undefined): number => (iso ? Date.parse(iso) : 0);

export interface QscheduleJobContext {
  /** The run in progress (running, else queued or waiting), if any. */
  current: JobRecord | undefined;
  /** The job of the latest run, ended or not: where and when it last ran. */
  latest: JobRecord | undefined;
  /** Some live runner serves the schedule's queue (and its placement). */
  served: boolean;
  /** The host of the runner of the latest run (its id once the runner is forgotten). */
  latestHost: string;
}

/**
 * A schedule as qschedule's job info: its fields and units (epoch ms, booleans). `lastRun` is the time of the latest
 * run as in qschedule's answers (its field list calls it the last run's ip: that is `lastRunHost`); `timeout` is
 * the job's alertAfterMs (qschedule alerted, it did not kill); `recover` is onLost.
 */
export function qscheduleJob(s: ScheduleRecord, c: QscheduleJobContext): Record<string, unknown> {
  const template = s.job ?? s.workflow?.steps[0]?.job;
  const queue = template?.queue ?? 'default';
  const latest = c.latest;
  return {
    name: s.name,
    desc: s.description,
    cron: s.cron,
    state: s.enabled,
    type: 'remote',
    recover: template?.onLost ?? 'retry',
    timeout: template?.alertAfterMs ?? 0,
    lastRun: ms(latest?.startedAt ?? latest?.createdAt ?? s.lastRunAt),
    lastRunHost: c.latestHost,
    lastState: qscheduleState(s, c.current, c.served),
    lastUpdate: ms(latest?.finishedAt ?? latest?.startedAt ?? latest?.createdAt ?? s.updatedAt),
    lastDuration: s.lastDurationMs ?? 0,
    nextRun: ms(s.nextRunAt),
    consecutiveFailTimesAlertThreshold: s.alertAfterFailures ?? 0,
    loadBalance: 'random',
    parameter: template?.args?.join(' ') ?? '',
    createdAt: ms(s.createdAt),
    updatedAt: ms(s.updatedAt),
    appId: 0,
    appName: queue,
    appCode: queue,
  };
}
