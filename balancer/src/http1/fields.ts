// Field lines (RFC 9112 section 5) of a complete head held as a latin1 string: strict token names,
// no whitespace before the colon, no obs-fold, field-value characters only, CRLF line ends only.
import { COLON, CR, FIELD_VALUE, HTAB, LF, SP, TCHAR } from './chars.js';
import { http1Error, type Http1Error } from './errors.js';

/** Scratch result: index just past the empty line that ends the section, or an error. */
export interface FieldsResult {
  end: number;
  error: Http1Error | undefined;
  /** some value had trailing HTAB trimmed (llhttp keeps it in tokens: callers choose the careful reading) */
  tabTrimmed?: boolean;
  /** indices (in `out`, of the name) of the fields whose value lost a trailing HTAB */
  tabFields?: number[];
}

/**
 * Parse field lines from `pos` (start of a line) up to and including the empty line; names and
 * values (OWS trimmed) are pushed onto `out`. `status` is the status of an over-count (431 for
 * requests, 502 for responses).
 */
export function parseFieldLines(head: string, pos: number, out: string[], maxFields: number, status: number, result: FieldsResult): FieldsResult {
  const len = head.length;
  let count = 0;
  result.tabTrimmed = false;
  if (result.tabFields !== undefined) result.tabFields.length = 0;
  for (;;) {
    if (pos >= len) return fail(result, 400, 'HPE_INCOMPLETE', 'head ended inside the field section');
    let c = head.charCodeAt(pos);
    if (c === CR) {
      if (head.charCodeAt(pos + 1) !== LF) return fail(result, 400, 'HPE_CR_EXPECTED', 'bare CR');
      result.end = pos + 2;
      result.error = undefined;
      return result;
    }
    if (c === SP || c === HTAB) return fail(result, 400, 'HPE_OBS_FOLD', 'obsolete line folding (obs-fold) is not accepted');
    const nameStart = pos;
    while (pos < len && TCHAR[c = head.charCodeAt(pos)] === 1) pos++;
    if (pos === nameStart) return fail(result, 400, 'HPE_INVALID_HEADER_TOKEN', 'empty or invalid header name');
    if (c !== COLON) {
      if (c === SP || c === HTAB) return fail(result, 400, 'HPE_INVALID_HEADER_TOKEN', 'whitespace before the colon of a header');
      return fail(result, 400, 'HPE_INVALID_HEADER_TOKEN', 'invalid character in a header name');
    }
    const nameEnd = pos++;
    while (pos < len && ((c = head.charCodeAt(pos)) === SP || c === HTAB)) pos++;
    const valueStart = pos;
    let valueEnd = pos;
    for (;;) {
      if (pos >= len) return fail(result, 400, 'HPE_INCOMPLETE', 'head ended inside a header value');
      c = head.charCodeAt(pos);
      if (c === CR) break;
      if (FIELD_VALUE[c] !== 1) {
        if (c === LF) return fail(result, 400, 'HPE_LF_EXPECTED', 'LF without CR in a header line');
        if (c === 0) return fail(result, 400, 'HPE_INVALID_HEADER_TOKEN', 'NUL in a header value');
        return fail(result, 400, 'HPE_INVALID_HEADER_TOKEN', 'invalid character in a header value');
      }
      pos++;
      if (c !== SP && c !== HTAB) valueEnd = pos;
    }
    if (head.charCodeAt(pos + 1) !== LF) return fail(result, 400, 'HPE_CR_EXPECTED', 'bare CR in a header value');
    if (valueEnd < pos && head.charCodeAt(pos - 1) === HTAB) {
      result.tabTrimmed = true;
      (result.tabFields ??= []).push(out.length);
    }
    pos += 2;
    if (++count > maxFields) return fail(result, status, 'HPE_HEADER_OVERFLOW', `more than ${maxFields} header fields`);
    out.push(head.slice(nameStart, nameEnd), head.slice(valueStart, valueEnd));
  }
}

function fail(result: FieldsResult, status: number, code: string, reason: string): FieldsResult {
  result.error = http1Error(status, code, reason);
  return result;
}

/** ASCII case-insensitive compare of a header name with a lower-case constant. */
export function nameIs(name: string, lower: string): boolean {
  return name.length === lower.length && (name === lower || name.toLowerCase() === lower);
}

/** Comma-separated list tokens (RFC 9110 section 5.6.1), lower-cased, empty elements skipped. */
export function listTokens(value: string, into: string[]): void {
  let start = 0;
  const len = value.length;
  while (start <= len) {
    let comma = value.indexOf(',', start);
    if (comma < 0) comma = len;
    // OWS is SP and HTAB only (String#trim would also eat NBSP and other Unicode spaces)
    let a = start;
    let z = comma;
    while (a < z && (value.charCodeAt(a) === 0x20 || value.charCodeAt(a) === 0x09)) a++;
    while (z > a && (value.charCodeAt(z - 1) === 0x20 || value.charCodeAt(z - 1) === 0x09)) z--;
    if (z > a) into.push(value.slice(a, z).toLowerCase());
    start = comma + 1;
  }
}

/** Content-Length value: 1*DIGIT only (no sign, no spaces, no list), at most 15 digits; -1 when invalid. */
export function parseContentLength(value: string): number {
  const len = value.length;
  if (len === 0 || len > 15) return -1;
  let n = 0;
  for (let i = 0; i < len; i++) {
    const d = value.charCodeAt(i) - 0x30;
    if (d < 0 || d > 9) return -1;
    n = n * 10 + d;
  }
  return n;
}
