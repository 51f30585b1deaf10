export { Runner, type RunnerOptions, type RunnerState } from './runner.js';
export { ChildProcessExecutor, type Executor, type ExecRequest, type ExecProcess } from './executor.js';
export { main } from './main.js';
export { chooseJobUser, resolveIdentity, DEFAULT_JOB_USER, type JobUserChoice, type UserDatabase } from './identity.js';
export { SpawnerExecutor, DEFAULT_SPAWNER_PATH } from './spawner-executor.js';
