import assert from 'node:assert/strict';
import { createLogger } from '@drover/core';
import { ChildProcessExecutor, DEFAULT_SPAWNER_PATH, SpawnerExecutor, type Executor } from '@drover/runner';

/** Both executors, by name: the tests that hold for each run once per entry. The helper must be built and up. */
export const EXECUTORS: [string, () => Promise<Executor>][] = [
  ['spawner helper', async () => {
    const ex = new SpawnerExecutor(DEFAULT_SPAWNER_PATH, createLogger('silent', 'test'));
    await ex.init();
    assert.ok(ex.usingHelper, 'the helper is built and running');
    return ex;
  }],
  ['child_process', async () => new ChildProcessExecutor()],
];
