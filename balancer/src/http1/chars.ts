// Character classes of RFC 9110/9112 as lookup tables (one byte -> 0/1), shared by the parsers.

function table(pred: (c: number) => boolean): Uint8Array {
  const t = new Uint8Array(256);
  for (let c = 0; c < 256; c++) t[c] = pred(c) ? 1 : 0;
  return t;
}

const ALPHA_DIGIT = (c: number): boolean => (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);

/** tchar (RFC 9110 section 5.6.2): header names, methods, chunk-extension names. */
export const TCHAR = table((c) => ALPHA_DIGIT(c) || "!#$%&'*+-.^_`|~".includes(String.fromCharCode(c)));

/** field-vchar / SP / HTAB (RFC 9110 section 5.5): VCHAR, obs-text, SP, HTAB; no CTL, no DEL. */
export const FIELD_VALUE = table((c) => c === 0x09 || c === 0x20 || (c >= 0x21 && c <= 0x7e) || c >= 0x80);

/** request-target bytes accepted: printable ASCII only (RFC 3986 plus the delimiters llhttp allows). */
export const TARGET = table((c) => c >= 0x21 && c <= 0x7e && c !== 0x5c /* backslash: llhttp refuses it in absolute-form */);

/** reason-phrase: HTAB / SP / VCHAR / obs-text. */
export const REASON = FIELD_VALUE;

export const HEX_VALUE = (() => {
  const t = new Int8Array(256).fill(-1);
  for (let c = 0; c < 10; c++) t[0x30 + c] = c;
  for (let c = 0; c < 6; c++) { t[0x41 + c] = 10 + c; t[0x61 + c] = 10 + c; }
  return t;
})();

export const CR = 0x0d;
export const LF = 0x0a;
export const SP = 0x20;
export const HTAB = 0x09;
export const COLON = 0x3a;
