import { createRequire } from 'node:module';

/** davgate's version, from package.json (two levels above the compiled dist/src/). */
export const VERSION: string = (() => {
  try {
    return (createRequire(import.meta.url)('../../package.json') as { version: string }).version;
  } catch {
    return 'unknown';
  }
})();
