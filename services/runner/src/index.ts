export { Runner, type RunnerOptions, type RunnerState } from './runner.js';
export { NamespacedRunner, namespaceRunnerConfig } from './namespaced.js';
export { ChildProcessExecutor, type Executor, type ExecRequest, type ExecProcess } from './executor.js';
export { main } from './main.js';
export { chooseJobUser, perJobIdentity, resolveIdentity, type JobUserChoice, type UserDatabase } from './identity.js';
export { RunnerCgroups } from './containment/cgroups.js';
export { hostLock, hostLockPath } from './containment/host-lock.js';
export { DEFAULT_JOB_UIDS, JobUidPool, hostUidLock, type JobUidLease, type JobUidPoolOptions, type UidLock } from './job-uids.js';
export { SpawnerExecutor, DEFAULT_SPAWNER_PATH } from './spawner-executor.js';
