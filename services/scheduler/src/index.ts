export { Scheduler, type SchedulerOptions } from './scheduler.js';
export { main } from './main.js';
