// A value pasted into a config file must stay one word of it: no whitespace, no statement or block
// delimiters, no comment or quote characters, nothing non-printable. Wider than any one format needs
// (nginx, haproxy, ours), so a value that passes is inert in all of them. Consul text (tags, meta, node
// names: the registrator registers them as given) reaches a rendered file only through this check.
const SAFE_WORD = /^[A-Za-z0-9._~:/@%+=,*\[\]^|!?&-]+$/;
const MAX_WORD = 512;

/** Why a value cannot be pasted into a config file as one word; undefined when it can. */
export function unsafeWordReason(value: string): string | undefined {
  if (value.length === 0) return 'empty';
  if (value.length > MAX_WORD) return `longer than ${MAX_WORD} characters`;
  if (SAFE_WORD.test(value)) return undefined;
  const bad = [...value].find((c) => !SAFE_WORD.test(c));
  return `contains ${JSON.stringify(bad)}, which cannot appear in a config value`;
}
