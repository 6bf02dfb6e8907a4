import { test } from 'node:test';
import assert from 'node:assert/strict';
test('runner finds compiled tests', () => { assert.equal(1 + 1, 2); });
