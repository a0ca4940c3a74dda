/**
 * runner-entry.ts — where the script runner's entry program is (runner-process.ts), for the
 * daemon to start it without loading it.
 */
import { fileURLToPath } from 'node:url';

export const runnerProcessPath: string = fileURLToPath(new URL('./runner-process.js', import.meta.url));
