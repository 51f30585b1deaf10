import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { OutboundRefused, type AttemptOutcome, type OutboundPolicy } from '@drover/core';

export interface PostResult {
  outcome: AttemptOutcome;
  /** The receiver's HTTP status, when it answered. */
  status: number | null;
  /** What went wrong, for the operator's log only (never stored or shown to submitters). */
  error: string | null;
  /** The error's code (ECONNREFUSED, CERT_HAS_EXPIRED, ...), from which the shown cause is made. */
  code?: string;
}

/**
 * POSTs deliveries through agents whose `lookup` is the outbound policy's: every address a host name resolves to is
 * checked right before connecting, so a name that changed its answer since it was submitted (DNS rebinding) cannot
 * reach a refused address. Literal addresses, which Node connects to without a lookup, are checked first. Redirects
 * are not followed (a 3xx is a rejection), and nothing of the answer but its status is read.
 */
export class DeliveryClient {
  private readonly http: HttpAgent;
  private readonly https: HttpsAgent;

  constructor(
    private readonly policy: OutboundPolicy,
    private readonly timeoutMs: number,
  ) {
    // No keep-alive: every delivery connects (and so is checked) afresh.
    this.http = new HttpAgent({ keepAlive: false, lookup: policy.lookup });
    this.https = new HttpsAgent({ keepAlive: false, lookup: policy.lookup });
  }

  async post(rawUrl: string, headers: Record<string, string>, body: string): Promise<PostResult> {
    let url: URL;
    try {
      url = new URL(rawUrl);
      this.policy.assertTarget(url);
    } catch (err) {
      return { outcome: 'refused_by_policy', status: null, error: err instanceof Error ? err.message : String(err) };
    }
    try {
      const status = await this.send(url, headers, body);
      return { outcome: status >= 200 && status <= 299 ? 'delivered' : 'rejected', status, error: null };
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      if (e instanceof OutboundRefused || e.code === 'DROVER_OUTBOUND_REFUSED') return { outcome: 'refused_by_policy', status: null, error: e.message };
      return { outcome: 'unreachable', status: null, error: `${e.code ?? e.name}: ${e.message}`, code: e.code ?? e.name };
    }
  }

  private send(url: URL, headers: Record<string, string>, body: string): Promise<number> {
    const https = url.protocol === 'https:';
    const options = {
      method: 'POST',
      headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) },
      agent: https ? this.https : this.http,
      signal: AbortSignal.timeout(this.timeoutMs),
    };
    return new Promise<number>((resolve, reject) => {
      const req = (https ? httpsRequest : httpRequest)(url, options, (res: IncomingMessage) => {
        resolve(res.statusCode ?? 0);
        // The answer's body is of no interest; do not let a receiver keep the socket busy with it.
        res.destroy();
      });
      req.on('error', reject);
      req.end(body);
    });
  }

  close(): void {
    this.http.destroy();
    this.https.destroy();
  }
}
