// Process entry point of the CLI (bin/kompresor.mjs and `npm run kompresor` load this file).
import { main } from './main.ts';

process.exitCode = await main(process.argv);
