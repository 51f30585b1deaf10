import type { DroverConfig } from '../config.js';
import { Keys } from '../store/keys.js';
import { BullmqTransport } from './bullmq.js';
import { RabbitmqTransport } from './rabbitmq.js';
import type { Logger } from 'pino';
import type { Transport } from './transport.js';
import type { DroverMetrics } from '../telemetry/metrics.js';

export type TransportConfig = Pick<DroverConfig, 'broker' | 'redisUrl' | 'prefix' | 'amqpUrl' | 'amqpQueueType'>;

/** `onWarning`: what an operator should know about the broker's setup (a RabbitMQ queue that cannot carry priorities). */
export function createTransport(
  config: TransportConfig,
  onEvent?: (event: 'connect' | 'disconnect', detail?: string) => void,
  onWarning?: (message: string) => void,
): Transport {
  switch (config.broker) {
    case 'bullmq':
      return new BullmqTransport({ redisUrl: config.redisUrl, prefix: new Keys(config.prefix).bull, ...(onEvent ? { onEvent } : {}) });
    case 'rabbitmq':
      return new RabbitmqTransport({
        url: config.amqpUrl, prefix: config.prefix, queueType: config.amqpQueueType, ...(onEvent ? { onEvent } : {}), ...(onWarning ? { onWarning } : {}),
      });
  }
}

/** Broker connection events as log lines and the reconnect counter: every service reports them the same way. */
export function logBrokerEvents(log: Logger, broker: string, metrics?: DroverMetrics): (event: 'connect' | 'disconnect', detail?: string) => void {
  metrics?.initBroker(broker);
  let lost = false;
  return (event, detail) => {
    if (event === 'connect') {
      log.info({ broker }, 'broker connected');
      if (lost) metrics?.brokerReconnects.inc({ broker });
      lost = false;
    } else {
      lost = true;
      log.warn({ broker, detail }, 'broker connection lost; reconnecting');
    }
  };
}
