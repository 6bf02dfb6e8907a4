// How the README test reads the commands out of the markdown: sections by heading, code lines by indent.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { allCodeLines, codeLines, sectionLines } from '../support/readme-commands.js';

const DOC = [
  '# title',
  '## One',
  'Prose with `inline code`.',
  '',
  '    first --flag      # a comment stays',
  '    second',
  '',
  '- a list item',
  '  continued with two spaces',
  '### A subsection stays in One',
  '',
  '    third   ',
  '## Two',
  '',
  '    fourth',
].join('\n');

describe('README command extraction', () => {
  it('a section runs to the next level-1 or level-2 heading, subsections included', () => {
    assert.deepEqual(codeLines(sectionLines(DOC, 'One')), ['first --flag      # a comment stays', 'second', 'third']);
    assert.deepEqual(codeLines(sectionLines(DOC, 'Two')), ['fourth']);
  });
  it('every code line of the document, in order; prose and list continuations are not code', () => {
    assert.deepEqual(allCodeLines(DOC), ['first --flag      # a comment stays', 'second', 'third', 'fourth']);
  });
  it('an unknown section is an error, not an empty list', () => {
    assert.throws(() => sectionLines(DOC, 'Three'), /no "## Three" section/);
  });
});
