// A small strict XML well-formedness checker for the SVG and HTML reports (no dependencies):
// balanced tags, quoted and unique attributes, valid entities, one root element. It returns the
// elements in document order with their attributes, so tests can count and measure them.

/**
 * Throws unless `xml` is one well-formed element tree (tags balanced, attributes quoted, entities
 * valid). A leading XML declaration or <!DOCTYPE html> is skipped.
 */
export function assertWellFormed(xml: string): { name: string; attrs: Record<string, string> }[] {
  const elements: { name: string; attrs: Record<string, string> }[] = [];
  const stack: string[] = [];
  const body = xml.replace(/^<\?xml[^?]*\?>\s*/, '').replace(/^<!DOCTYPE html>\s*/i, '');
  const token = /<(\/?)([A-Za-z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>|([^<]+)|(<)/gy;
  let m: RegExpExecArray | null, roots = 0;
  while ((m = token.exec(body)) !== null) {
    const [, close, name, attrText, selfClose, text, stray] = m;
    if (stray) throw new Error(`stray "<" at ${m.index}: ${body.slice(m.index, m.index + 40)}`);
    if (text !== undefined) {
      if (stack.length === 0 && text.trim() !== '') throw new Error(`text outside the root: ${text}`);
      for (const e of text.match(/&[^;\s]*;?/g) ?? []) if (!/^&(amp|lt|gt|quot|apos|#\d+);$/.test(e)) throw new Error(`bad entity ${e}`);
      if (text.includes('>')) throw new Error(`raw ">" in text: ${text}`);
      continue;
    }
    if (close) {
      if (stack.pop() !== name) throw new Error(`</${name}> closes the wrong element`);
      continue;
    }
    if (stack.length === 0 && ++roots > 1) throw new Error('more than one root element');
    const attrs: Record<string, string> = {};
    for (const a of attrText.matchAll(/([\w:-]+)="([^"]*)"/g)) {
      if (a[1] in attrs) throw new Error(`duplicate attribute ${a[1]} on <${name}>`);
      attrs[a[1]] = a[2];
    }
    elements.push({ name, attrs });
    if (!selfClose) stack.push(name);
  }
  if (token.lastIndex !== 0 && token.lastIndex < body.length) throw new Error(`unparsed input at ${token.lastIndex}`);
  if (stack.length > 0) throw new Error(`unclosed <${stack.join('>, <')}>`);
  if (roots !== 1) throw new Error('no root element');
  return elements;
}
