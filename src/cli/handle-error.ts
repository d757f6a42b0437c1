/**
 * The one place errors become exit codes and messages: 2 for bad usage, input or configuration
 * (nothing was changed), 1 for everything else. Unknown errors are shown with their message only —
 * connection settings never reach the output with a password in them.
 */
import pc from 'picocolors';
import { ConnectionError, exitCodeOf, UsageError } from '../errors.ts';
import { describeError } from '../migration/describe-error.ts';
import type { Output } from './output.ts';

export async function handleError(error: unknown, output: Output, command: string): Promise<1 | 2> {
  const code = exitCodeOf(error);
  const message = error instanceof UsageError || error instanceof ConnectionError ? error.message : describeError(error);
  process.stderr.write(`${pc.red('error')} ${message}\n`);
  if (output.json) await output.document({ command, ok: false, error: message });
  return code;
}
