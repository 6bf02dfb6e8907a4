#!/usr/bin/env node
// Thin launcher: the compiled program lives in dist/ (built by `npm ci` through the `prepare` script).
import '../dist/registrator/src/main.js';
