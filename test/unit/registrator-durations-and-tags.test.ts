// Go duration validation and escaped tag lists.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isPositiveDuration, parseGoDuration } from '../../registrator/src/mapping/duration.js';
import { expandTagTemplate, splitEscapedList } from '../../registrator/src/mapping/tags.js';

test('Go durations', () => {
  const cases: Array<[string, number | undefined]> = [
    ['10s', 10_000], ['1m30s', 90_000], ['500ms', 500], ['1.5h', 5_400_000], ['2h45m', 9_900_000],
    ['100us', 0.1], ['0', 0], ['.5s', 500],
    ['10', undefined], ['', undefined], ['s', undefined], ['1 m', undefined], ['-5s', undefined], ['1d', undefined],
    ['10S', undefined], ['1m 30s', undefined],
  ];
  for (const [text, ms] of cases) assert.equal(parseGoDuration(text), ms, text);
  assert.equal(isPositiveDuration('0s'), false);
  assert.equal(isPositiveDuration('0'), false);
  assert.equal(isPositiveDuration('1ns'), true);
});

test('escaped comma lists', () => {
  const cases: Array<[string, string[]]> = [
    ['a,b', ['a', 'b']], ['a\\,b,c', ['a,b', 'c']], [' a , ,b ', ['a', 'b']], ['', []], ['x\\', ['x\\']],
    ['k=v\\,w', ['k=v,w']],
  ];
  for (const [text, want] of cases) assert.deepEqual(splitEscapedList(text), want, text);
});

test('tag templates', () => {
  const values = { Hostname: 'h', ContainerName: 'c', ContainerHostname: 'ch', ContainerID: 'id', Image: 'img' };
  assert.deepEqual(expandTagTemplate('{{.Hostname}}-{{.Image}}', values), { tag: 'h-img', unknown: [] });
  assert.deepEqual(expandTagTemplate('{{.Foo}}', values), { tag: '{{.Foo}}', unknown: ['Foo'] });
  assert.deepEqual(expandTagTemplate('plain', values), { tag: 'plain', unknown: [] });
});
