export { Runner, type RunnerOptions, type RunnerState } from './runner.js';
export { ChildProcessExecutor, type Executor, type ExecRequest, type ExecProcess } from './executor.js';
export { main } from './main.js';
export { SpawnerExecutor, DEFAULT_SPAWNER_PATH } from './spawner-executor.js';
