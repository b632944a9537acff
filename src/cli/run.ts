// Process entry point of the CLI (bin/kompresor.mjs and `npm run kompresor` load this file).
import { main } from './main.ts';

// Node exits 13 when the awaited main() can never settle (the event loop emptied under an await,
// e.g. a promise nobody resolves): say so in one line instead of exiting silently
process.on('exit', (code) => {
  if (code === 13) console.error('kompresor: [ImplError] kompresor: every awaited operation must settle; found one that never did (exit 13).');
});

process.exitCode = await main(process.argv);
