import type { Command } from 'commander';
import type { Output } from './output.ts';

/**
 * Runs a command body with its output set up, and turns what it returns (or throws) into the exit
 * code. Provided by main.ts so that error handling stays in one place.
 */
export type RunCommand = (command: string, flags: { json?: boolean }, body: (output: Output) => Promise<number>) => Promise<void>;

/** Each file under commands/ exports one of these: it only declares commands and calls library functions. */
export type Register = (program: Command, run: RunCommand) => void;
