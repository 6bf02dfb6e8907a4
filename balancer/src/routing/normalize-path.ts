// Request path normalization before routing (RFC 3986 sections 5.2.4 and 6.2.2). Routing sees, and
// the upstream receives, one and the same normalized path, so `/public/../admin` can neither pass a
// `/public` route nor reach `/admin` behind it.
//   - percent-encoded unreserved characters are decoded (`%2e` is `.`, `%41` is `A`), other escapes
//     keep their meaning and get upper-case hex (`%2f` -> `%2F`: an encoded slash is data, not a separator);
//   - dot segments are removed (`/a/./b/../c` -> `/a/c`, never above the root);
//   - a path whose meaning depends on who reads it is refused: a dot segment that only appears when
//     `%2F`, `\`, `%5C` are taken as separators or `;params` are cut off (Tomcat, IIS, some routers do),
//     `%00`, and malformed escapes. The caller answers 400 with the reason.
// Pure, no allocation on the common path (no '%', '\', ';' and no "/." in it).

export type PathRejectReason = 'bad_percent_encoding' | 'encoded_nul' | 'ambiguous_dot_segment' | 'bad_target';

export class PathRejection {
  constructor(readonly reason: PathRejectReason) {}
}

const BAD_PERCENT = Object.freeze(new PathRejection('bad_percent_encoding'));
const ENCODED_NUL = Object.freeze(new PathRejection('encoded_nul'));
const AMBIGUOUS = Object.freeze(new PathRejection('ambiguous_dot_segment'));
const BAD_TARGET = Object.freeze(new PathRejection('bad_target'));

const HEX = '0123456789ABCDEF';

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  const l = c | 0x20;
  if (l >= 97 && l <= 102) return l - 87;
  return -1;
}

/** RFC 3986 unreserved: ALPHA / DIGIT / "-" / "." / "_" / "~" */
function isUnreserved(c: number): boolean {
  return (c >= 48 && c <= 57) || ((c | 0x20) >= 97 && (c | 0x20) <= 122) || c === 45 || c === 46 || c === 95 || c === 126;
}

/** Does the path need the slow path: an escape, a backslash, a path parameter or a segment starting with '.'? */
function needsWork(path: string): boolean {
  for (let i = 0; i < path.length; i++) {
    const c = path.charCodeAt(i);
    if (c === 37 /* % */ || c === 92 /* \ */ || c === 59 /* ; */) return true;
    if (c === 46 /* . */ && path.charCodeAt(i - 1) === 47 /* / */) return true;
  }
  return false;
}

/** Is s[start, end) "." or ".."? */
function isDotSegment(s: string, start: number, end: number): boolean {
  const n = end - start;
  return (n === 1 && s.charCodeAt(start) === 46) || (n === 2 && s.charCodeAt(start) === 46 && s.charCodeAt(start + 1) === 46);
}

/** Dot segments when only '/' separates segments (what we route on). */
function strictDotSegments(s: string): number {
  let count = 0;
  let start = 0;
  for (let i = 0; i <= s.length; i++) {
    if (i === s.length || s.charCodeAt(i) === 47) {
      if (isDotSegment(s, start, i)) count++;
      start = i + 1;
    }
  }
  return count;
}

/**
 * Dot segments when '/', '\', "%2F" and "%5C" all separate segments and ";..." is cut from each
 * segment (what a lenient backend may see). `s` has upper-case hex already.
 */
function lenientDotSegments(s: string): number {
  let count = 0;
  let start = 0;
  let paramAt = -1;
  for (let i = 0; i <= s.length; i++) {
    let sep = 0;
    if (i === s.length) sep = 1;
    else {
      const c = s.charCodeAt(i);
      if (c === 47 || c === 92) sep = 1;
      else if (c === 37 && s.charCodeAt(i + 1) === 50 && s.charCodeAt(i + 2) === 70) sep = 3; // %2F
      else if (c === 37 && s.charCodeAt(i + 1) === 53 && s.charCodeAt(i + 2) === 67) sep = 3; // %5C
      else if (c === 59 && paramAt < 0) paramAt = i;
    }
    if (sep > 0) {
      if (isDotSegment(s, start, paramAt >= 0 ? paramAt : i)) count++;
      start = i + sep;
      paramAt = -1;
      i += sep - 1;
    }
  }
  return count;
}

/** RFC 3986 5.2.4 remove_dot_segments for an absolute path ('/' separates segments). */
function removeDotSegments(s: string): string {
  const segments = s.slice(1).split('/');
  const out: string[] = [];
  const last = segments.length - 1;
  for (let i = 0; i <= last; i++) {
    const seg = segments[i];
    if (seg === '.' || seg === '..') {
      if (seg === '..') out.pop();
      // "/a/." and "/a/b/.." end in a directory: keep the trailing slash
      if (i === last) out.push('');
      continue;
    }
    out.push(seg);
  }
  return `/${out.join('/')}`;
}

/**
 * The normalized form of an origin-form path (no query), or why it is refused. `*` (asterisk-form,
 * OPTIONS) is returned as it is; any other path must start with '/'.
 */
export function normalizePath(path: string): string | PathRejection {
  if (path.charCodeAt(0) !== 47) return path === '*' ? path : BAD_TARGET;
  if (!needsWork(path)) return path;
  let decoded = path;
  if (path.includes('%')) {
    let out = '';
    let from = 0;
    for (let i = 0; i < path.length; i++) {
      if (path.charCodeAt(i) !== 37) continue;
      const hi = hexValue(path.charCodeAt(i + 1));
      const lo = hexValue(path.charCodeAt(i + 2));
      if (hi < 0 || lo < 0) return BAD_PERCENT;
      const v = hi * 16 + lo;
      if (v === 0) return ENCODED_NUL;
      out += path.slice(from, i);
      out += isUnreserved(v) ? String.fromCharCode(v) : `%${HEX[hi]}${HEX[lo]}`;
      from = i + 3;
      i += 2;
    }
    decoded = out + path.slice(from);
  }
  const strict = strictDotSegments(decoded);
  if (lenientDotSegments(decoded) > strict) return AMBIGUOUS;
  return strict === 0 ? decoded : removeDotSegments(decoded);
}
