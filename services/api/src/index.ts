export { buildApp, type AppOptions } from './app.js';
export { startApiServer, type ApiServer, type ApiServerOptions } from './server.js';
export { loadTokens, TokenRegistry, type Scope } from './auth.js';
export type { ApiContext } from './context.js';
export { main } from './main.js';
export { routeTable, type QueueGuard, type RouteEntry } from './queue-scope.js';
export { NAMESPACE_HEADER, namedNamespace } from './namespace-router.js';
