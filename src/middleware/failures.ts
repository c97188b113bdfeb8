import { GuardBusyError, RemoteGuardError } from '../guard/errors.js';
import { describeValue } from '../shared/validation.js';
import type { GuardErrorCode } from './metadata-types.js';

// Errors are marked where they are caught (the loader, Gen's checks), so that metadata names their kind.
const loadFailures = new WeakSet<object>();
const genFailures = new WeakSet<object>();

export function markLoadFailure(error: Error): void {
  loadFailures.add(error);
}

/** Marks a failure of the Gen classifier (its load, a remote error, its output): metadata code 'gen-failed'. */
export function genFailed(error: unknown): Error {
  const marked = error instanceof Error ? error : new Error(`the Gen classifier failed with ${describeValue(error)}`);
  genFailures.add(marked);
  return marked;
}

const marked = (set: WeakSet<object>, error: unknown) => typeof error === 'object' && error !== null && set.has(error);

/** The metadata code of a failure: as precise as the cause allows (a remote guard's own code first). */
export function errorCode(failure: unknown, policyFailed: boolean): GuardErrorCode | null {
  if (marked(genFailures, failure)) return 'gen-failed';
  if (failure instanceof RemoteGuardError) return failure.code;
  if (failure !== undefined) return marked(loadFailures, failure) ? 'guard-load-failed' : failure instanceof GuardBusyError ? 'guard-busy' : 'guard-failed';
  return policyFailed ? 'policy-function-failed' : null;
}
