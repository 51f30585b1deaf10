export { Scheduler, assertSchedulerConfig, type SchedulerOptions } from './scheduler.js';
export { NamespacedScheduler } from './namespaced.js';
export { main } from './main.js';
