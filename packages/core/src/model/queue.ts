import { Type, type Static } from 'typebox';
import { MAX_DURATION_MS } from './job-spec.js';
import { Resources, parseResources, type JobResources } from './resources.js';

/**
 * A queue's settings (Coyotes' channels): PUT /v1/queues/:name. Every setting is optional; `null` clears one.
 * They hold across all runners because the store checks them when a runner claims a job.
 */
export const QueueSettingsInput = Type.Object(
  {
    concurrency: Type.Optional(
      Type.Union([Type.Integer({ minimum: 1, maximum: 100_000 }), Type.Null()], {
        description: 'Most jobs of this queue running at once, across all runners. null: no limit.',
      }),
    ),
    rateLimit: Type.Optional(
      Type.Union(
        [
          Type.Object(
            {
              max: Type.Integer({ minimum: 1, maximum: 1_000_000, description: 'Starts allowed per window.' }),
              perMs: Type.Integer({ minimum: 1, maximum: MAX_DURATION_MS, description: 'Window length, ms (sliding).' }),
            },
            { additionalProperties: false },
          ),
          Type.Null(),
        ],
        { description: 'At most `max` job starts in any `perMs` window. null: no limit.' },
      ),
    ),
    dedupe: Type.Optional(
      Type.Boolean({ description: "Coyotes' distinct: a command already queued or running in this queue is not queued again." }),
    ),
    paused: Type.Optional(Type.Boolean({ description: 'Take no new jobs from this queue; running jobs finish.' })),
    defaultTimeoutMs: Type.Optional(
      Type.Union([Type.Integer({ minimum: 1, maximum: MAX_DURATION_MS }), Type.Null()], { description: 'Timeout for jobs that set none.' }),
    ),
    resources: Type.Optional(
      Type.Union([Resources, Type.Null()], {
        description: 'Limits for jobs of this queue that set none, field by field (each runner caps them at its maxima). null or {}: none.',
      }),
    ),
  },
  { additionalProperties: false },
);
export type QueueSettingsInput = Static<typeof QueueSettingsInput>;

export interface QueueSettings {
  concurrency: number | null;
  rateLimit: { max: number; perMs: number } | null;
  dedupe: boolean;
  paused: boolean;
  defaultTimeoutMs: number | null;
  /** Default limits of the queue's jobs; absent when it has none. */
  resources?: JobResources;
}

/** The stored hash (strings) as settings. */
export function settingsFromHash(h: Record<string, string>): QueueSettings {
  const int = (v: string | undefined): number | null => (v ? Number(v) : null);
  const max = int(h.rateMax);
  const perMs = int(h.ratePerMs);
  const resources = parseResources(h.resources);
  return {
    concurrency: int(h.concurrency),
    rateLimit: max !== null && perMs !== null ? { max, perMs } : null,
    dedupe: h.dedupe === '1',
    paused: h.paused === '1',
    defaultTimeoutMs: int(h.defaultTimeoutMs),
    ...(resources ? { resources } : {}),
  };
}

/** Hash fields to set and to delete for a settings change. */
export function settingsToHash(input: QueueSettingsInput): { set: Record<string, string>; del: string[] } {
  const set: Record<string, string> = {};
  const del: string[] = [];
  const put = (field: string, v: number | boolean | null | undefined): void => {
    if (v === undefined) return;
    if (v === null || v === false) del.push(field);
    else set[field] = v === true ? '1' : String(v);
  };
  put('concurrency', input.concurrency);
  if (input.rateLimit !== undefined) {
    put('rateMax', input.rateLimit?.max ?? null);
    put('ratePerMs', input.rateLimit?.perMs ?? null);
  }
  put('dedupe', input.dedupe);
  put('paused', input.paused);
  put('defaultTimeoutMs', input.defaultTimeoutMs);
  // One JSON field, read whole by the claim script and handed to the runner as it is.
  if (input.resources === null || (input.resources && Object.keys(input.resources).length === 0)) del.push('resources');
  else if (input.resources) set.resources = JSON.stringify(input.resources);
  return { set, del };
}
