import {
  SpanKind, contextFromTraceparent, contextWithSpan, failSpan, startSpan, traceparentOf, tracingEnabled, withSpan,
  type Claim, type Context, type DroverMetrics, type FinishOutcome, type FinishResult, type Span,
} from '@drover/core';

/**
 * Metrics and the trace of one attempt. The trace continues the submission's (its traceparent is in the job
 * record, so it works the same over BullMQ and RabbitMQ): a consumer span for the attempt, and inside it a span
 * for the process, whose context the command receives as TRACEPARENT.
 */
export class JobTelemetry {
  private readonly parent: Context | undefined;
  private readonly attemptSpan: Span | undefined;
  private processSpan: Span | undefined;
  private spawnedAt: number | undefined;

  constructor(
    private readonly metrics: DroverMetrics,
    private readonly jobId: string,
    private readonly queue: string,
    claim: Claim,
    broker: string,
    now = Date.now(),
  ) {
    metrics.jobsStarted.inc({ queue });
    if (claim.queuedAt !== undefined) metrics.queueWait.observe({ queue }, Math.max(0, now - claim.queuedAt) / 1000);
    if (!tracingEnabled()) return;
    this.parent = contextFromTraceparent(claim.traceparent);
    this.attemptSpan = startSpan(`process ${queue}`, SpanKind.CONSUMER, this.parent, {
      'messaging.system': broker,
      'messaging.operation.type': 'process',
      'messaging.destination.name': queue,
      'messaging.message.id': jobId,
      'drover.job.id': jobId,
      'drover.job.attempt': claim.attempt,
    });
  }

  /** Runs `fn` inside the attempt's span, so the runner's log lines about this job carry its trace id. */
  within<T>(fn: () => T): T {
    return this.attemptSpan && this.parent ? withSpan(this.attemptSpan, this.parent, fn) : fn();
  }

  /** Opens the process span; returns the TRACEPARENT the command gets (undefined when tracing is off). */
  processTraceparent(): string | undefined {
    if (!this.attemptSpan || !this.parent) return undefined;
    this.processSpan = startSpan('job.exec', SpanKind.INTERNAL, contextWithSpan(this.parent, this.attemptSpan), {
      'drover.job.id': this.jobId,
    });
    return traceparentOf(this.processSpan);
  }

  spawned(at: number): void {
    this.spawnedAt = at;
  }

  /** The attempt's result as recorded by the store: counts, the duration histogram, and both spans ended. */
  finished(outcome: FinishOutcome, exitCode: number | null, startedAt: number | null, result: FinishResult | undefined, now = Date.now()): void {
    const { metrics, queue } = this;
    const began = startedAt ?? this.spawnedAt;
    if (began !== undefined) metrics.jobDuration.observe({ queue, status: outcome }, Math.max(0, now - began) / 1000);
    if (outcome === 'lost') metrics.jobsLost.inc({ queue });
    if (result?.kind === 'final') metrics.jobsFinished.inc({ queue, status: result.status });
    if (result?.kind === 'retry') metrics.jobsRetried.inc({ queue });
    if (this.processSpan) {
      if (exitCode !== null) this.processSpan.setAttribute('process.exit.code', exitCode);
      if (began !== undefined) this.processSpan.setAttribute('drover.job.duration_ms', now - began);
      this.processSpan.setAttribute('drover.job.outcome', outcome);
      if (outcome !== 'succeeded') failSpan(this.processSpan, new Error(`job ${outcome}${exitCode !== null ? ` (exit code ${exitCode})` : ''}`));
      this.processSpan.end(now);
    }
    if (this.attemptSpan) {
      this.attemptSpan.setAttribute('drover.job.outcome', outcome);
      if (result) this.attemptSpan.setAttribute('drover.job.status', result.status);
      if (outcome !== 'succeeded') failSpan(this.attemptSpan, new Error(`attempt ${outcome}`));
      this.attemptSpan.end(now);
    }
  }

  /** The attempt ended without a usable result (the store failed, or the lease was lost): close the spans. */
  abandoned(err: unknown): void {
    for (const span of [this.processSpan, this.attemptSpan]) {
      if (!span) continue;
      failSpan(span, err);
      span.end();
    }
  }
}
