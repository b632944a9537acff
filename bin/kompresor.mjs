#!/usr/bin/env node
// The `kompresor` executable: registers tsx so the TypeScript sources run directly on Node 20.
import { register } from 'tsx/esm/api';

register();
await import('../src/cli/run.ts');
