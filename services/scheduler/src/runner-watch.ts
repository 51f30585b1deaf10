import type { EventStore } from '@drover/core';

/**
 * Runners whose registry entry expired (no heartbeat for two leases) without a clean stop: one `runner.gone`
 * event each. The `runners:gone` set makes it once however many schedulers look; a runner that comes back
 * under the same id leaves the set when it joins.
 */
export async function reportGoneRunners(events: EventStore): Promise<string[]> {
  const { keys } = events;
  const ids = await events.redis.zrange(keys.runners, 0, -1);
  if (ids.length === 0) return [];
  const pipe = events.redis.pipeline();
  for (const id of ids) pipe.exists(keys.runner(id));
  const alive = (await pipe.exec()) ?? [];
  const gone: string[] = [];
  for (let i = 0; i < ids.length; i++) {
    if (alive[i]?.[1] !== 0) continue;
    const id = ids[i]!;
    if ((await events.redis.sadd(keys.runnersGone, id)) === 1) {
      await events.append('runner.gone', { data: { runnerId: id } });
      gone.push(id);
    }
  }
  return gone;
}
