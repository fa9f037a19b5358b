/**
 * A task bounded by a deadline and, optionally, by an outer cancellation.
 * @internal
 */

/** What ends a bounded task early: an abort signal and the error it stands for. */
export interface Cancel {
  signal: AbortSignal;
  error: () => Error;
}

/**
 * Run `task` with a signal of its own. When `limitMs` passes (`null`: no limit) or `cancel`
 * aborts, that signal is aborted with the error (`onTimeout()`, or `cancel.error()`) as its
 * reason, and the returned promise rejects with that error at once, whether the task heeds its
 * signal or not.
 * @internal
 */
export function withDeadline<T>(
  task: (signal: AbortSignal) => Promise<T>,
  limitMs: number | null,
  onTimeout: () => Error,
  cancel?: Cancel,
): Promise<T> {
  const own = new AbortController();
  let timer: ReturnType<typeof setTimeout> | undefined;
  let onCancel: (() => void) | undefined;
  const stopped = new Promise<never>((_, reject) => {
    const stop = (e: Error): void => {
      own.abort(e);
      reject(e);
    };
    if (cancel !== undefined) {
      if (cancel.signal.aborted) stop(cancel.error());
      else {
        onCancel = () => stop(cancel.error());
        cancel.signal.addEventListener("abort", onCancel, { once: true });
      }
    }
    if (limitMs !== null && !own.signal.aborted) timer = setTimeout(() => stop(onTimeout()), limitMs);
  });
  let work: Promise<T>;
  try {
    work = task(own.signal);
  } catch (e) {
    work = Promise.reject(e);
  }
  return Promise.race([work, stopped]).finally(() => {
    clearTimeout(timer);
    if (onCancel !== undefined) cancel?.signal.removeEventListener("abort", onCancel);
  });
}
