#!/usr/bin/env -S MALLOC_MMAP_THRESHOLD_=1048576 node --max-semi-space-size=4
// The shebang carries davgate's memory settings, so `davgate serve` starts with them however
// it is installed (npm's bin links, npx; npm's Windows shims read `env -S` too): V8's young
// generation capped at 4 MiB per semi-space (~-20 MB under 16 streams, throughput within
// noise) and glibc told to return freed 4 MiB block buffers to the system (else ~+150 MB
// after a 256 MiB cold read). `npm start` and the image pass the same settings themselves.
import { Command } from 'commander';
import { redacted } from './config.js';
import { ConfigError, DavgateError } from './errors.js';
import { VERSION } from './version.js';
import { configFrom, withConfigOptions } from './cli/options.js';
import { serve } from './cli/serve.js';
import { cacheCommand, reloadCommand } from './cli/cache.js';

const program = new Command('davgate').description('A caching WebDAV gateway').version(VERSION, '-V, --version').showHelpAfterError();
withConfigOptions(program.command('serve').description('serve the upstream through the cache')).action(serve);
withConfigOptions(program.command('config').description('check a configuration').argument('<action>', 'check'))
  .action((action: string, o: Record<string, unknown>) => {
    if (action !== 'check') throw new ConfigError(`unknown config action "${action}"`);
    console.log(JSON.stringify(redacted(configFrom(o)), null, 2));
  });
program.addCommand(cacheCommand());
program.addCommand(reloadCommand());

program.parseAsync(process.argv).catch((err: unknown) => {
  // One clear line and a non-zero exit.
  const msg = err instanceof DavgateError ? err.message : (err as Error)?.message ?? String(err);
  console.error(`davgate: ${msg}`);
  process.exit(2);
});
