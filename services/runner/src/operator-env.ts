import { performance } from 'node:perf_hooks';
import { coerceError, variableNameProblem, type Logger, type VariableStore } from '@drover/core';

/** A runner that missed a change notice (its control connection was down) sees the change within this, ms. */
export const OPERATOR_ENV_REFRESH_MS = 5000;

/**
 * The operator variables (PUT /v1/variables) as this runner hands them to jobs: read once, kept, and read again only
 * before a start that follows a change notice or comes more than OPERATOR_ENV_REFRESH_MS after the last read, so a
 * job start costs no Redis round trip. The API announces a change before it answers, so the runner has the notice
 * before it can claim any job submitted after the answer. Values stay as stored (sealed); the job opens them.
 */
export class OperatorEnv {
  private values: Record<string, string> = {};
  private readAt = Number.NEGATIVE_INFINITY;
  private stale = true;
  private reading: Promise<void> | undefined;

  constructor(
    private readonly store: VariableStore,
    private readonly log: Logger,
    private readonly refreshMs = OPERATOR_ENV_REFRESH_MS,
  ) {}

  /** A change notice came: the next start reads again. */
  invalidate(): void {
    this.stale = true;
  }

  async current(): Promise<Readonly<Record<string, string>>> {
    // Once more if a notice came while a read was under way (that read may predate the change); bounded, so a
    // failing read delays no start for long.
    for (let i = 0; i < 3 && (this.stale || performance.now() - this.readAt > this.refreshMs); i++) {
      this.reading ??= this.read().finally(() => {
        this.reading = undefined;
      });
      await this.reading;
    }
    return this.values;
  }

  private async read(): Promise<void> {
    this.stale = false;
    const startedAt = performance.now();
    try {
      const all = await this.store.all();
      // Checked again here: whoever can write to Redis could have bypassed the API.
      const values: Record<string, string> = {};
      for (const [name, value] of Object.entries(all)) {
        if (variableNameProblem(name)) this.log.warn({ variable: name }, 'ignoring an operator variable no job may get');
        else values[name] = value;
      }
      this.values = values;
      this.readAt = startedAt;
    } catch (err) {
      // Jobs start with the variables read before rather than not at all; the next start reads again.
      this.stale = true;
      this.log.warn({ err: coerceError(err) }, 'reading the operator variables failed; jobs get the ones read before');
    }
  }
}
