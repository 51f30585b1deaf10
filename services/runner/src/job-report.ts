import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';

/** The line prefix of a job's report on stdout: `::drover progress 40`, `::drover result {"rows":12}`. */
export const REPORT_PREFIX = '::drover ';
/** The files in a job's private directory it may write its progress and its result to (DROVER_PROGRESS_FILE, DROVER_RESULT_FILE). */
export const PROGRESS_FILE = '.drover-progress';
export const RESULT_FILE = '.drover-result.json';
/** The largest result kept (its JSON text, in bytes); a bigger one is refused with a note in the output. */
export const RESULT_MAX_BYTES = 64 * 1024;
/** At most one job.progress event per job this often; the last value is always written when the attempt ends. */
export const PROGRESS_EVENT_INTERVAL_MS = 1000;
/** How often the runner reads a running job's progress file. */
export const PROGRESS_POLL_MS = 1000;

/** A progress value: a number from 0 to 100 (a trailing `%` allowed); anything else is ignored (undefined). */
export function parseProgress(text: string): number | undefined {
  const t = text.trim().replace(/%$/, '');
  if (!/^\d{1,3}(\.\d{1,6})?$/.test(t)) return undefined;
  const n = Number(t);
  return n <= 100 ? n : undefined;
}

/** A result: its JSON text, compacted, or why it was refused. */
export function parseResult(text: string): { json: string } | { error: string } {
  const bytes = Buffer.byteLength(text);
  if (bytes > RESULT_MAX_BYTES) return { error: `result ignored: ${bytes} bytes is over the ${RESULT_MAX_BYTES}-byte limit` };
  try {
    return { json: JSON.stringify(JSON.parse(text)) };
  } catch {
    return { error: 'result ignored: it is not valid JSON' };
  }
}

/** What a `::drover ` line says; null for a directive Drover does not know (kept as plain output). */
export function parseReportLine(line: string): { progress: number | undefined } | { result: ReturnType<typeof parseResult> } | null {
  const rest = line.slice(REPORT_PREFIX.length);
  const space = rest.indexOf(' ');
  const word = space < 0 ? rest : rest.slice(0, space);
  const value = space < 0 ? '' : rest.slice(space + 1);
  if (word === 'progress') return { progress: parseProgress(value) };
  if (word === 'result') return { result: parseResult(value) };
  return null;
}

/**
 * Reads a small file the job wrote in its directory, without following what the job could plant there: no symlink
 * (O_NOFOLLOW), no FIFO to block on, a regular file with one link, owned by the job's uid when it has one of its own.
 * The runner may be able to read what the job cannot; this keeps it from reading anything but the job's own file.
 */
export async function readJobFile(path: string, maxBytes: number, ownerUid: number | undefined): Promise<Buffer | 'too_big' | undefined> {
  let fh;
  try {
    fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch {
    return undefined;
  }
  try {
    const st = await fh.stat();
    if (!st.isFile() || st.nlink !== 1 || (ownerUid !== undefined && st.uid !== ownerUid)) return undefined;
    if (st.size > maxBytes) return 'too_big';
    const buf = Buffer.alloc(Math.min(maxBytes + 1, st.size + 1));
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    return bytesRead > maxBytes ? 'too_big' : buf.subarray(0, bytesRead);
  } catch {
    return undefined;
  } finally {
    await fh.close().catch(() => undefined);
  }
}

/** The job's progress file, when it wrote a valid one. */
export async function readProgressFile(jobDir: string, ownerUid: number | undefined): Promise<number | undefined> {
  const data = await readJobFile(join(jobDir, PROGRESS_FILE), 64, ownerUid);
  return data === undefined || data === 'too_big' ? undefined : parseProgress(data.toString('utf8'));
}

/** The job's result file: its JSON, why it was refused, or undefined when there is none. */
export async function readResultFile(jobDir: string, ownerUid: number | undefined): Promise<ReturnType<typeof parseResult> | undefined> {
  const data = await readJobFile(join(jobDir, RESULT_FILE), RESULT_MAX_BYTES, ownerUid);
  if (data === undefined) return undefined;
  if (data === 'too_big') return { error: `result file ignored: it is over the ${RESULT_MAX_BYTES}-byte limit` };
  return parseResult(data.toString('utf8'));
}
