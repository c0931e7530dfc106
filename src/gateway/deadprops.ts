import { escapeXml } from './xml.js';

// Serialising dead property values as webdav-server's PROPPATCH stored them: xml-js element
// trees whose names are the namespace URI and local name run together ("DAV:href",
// "http://example.com/ns/foo"). The split back is a best guess at the last "/", ":" or "#";
// a requested property is always answered with the namespace the client asked for.

export interface XmlJsNode {
  type?: string;
  name?: string;
  text?: string | number;
  cdata?: string;
  attributes?: Record<string, string | number | undefined>;
  elements?: XmlJsNode[];
}

export interface DeadProperty {
  value: string | XmlJsNode | XmlJsNode[];
}

export function splitPropertyName(name: string): { ns: string; local: string } {
  const m = /^(.*[/:#])([^/:#]+)$/.exec(name);
  return m ? { ns: m[1]!, local: m[2]! } : { ns: '', local: name };
}

function elementXml(el: XmlJsNode, depth: number): string {
  if (el.type === 'text') return escapeXml(String(el.text ?? ''));
  if (el.type === 'cdata') return escapeXml(el.cdata ?? '');
  if (!el.name || depth > 64) return '';
  const { ns, local } = splitPropertyName(el.name);
  const attrs = Object.entries(el.attributes ?? {})
    .filter(([k]) => !k.startsWith('xmlns'))
    .map(([k, v]) => ` ${k.replace(/[^\w.-]/g, "_")}="${escapeXml(String(v ?? ""), true)}"`).join("");
  const tag = ns ? `P${depth}:${local}` : local;
  const decl = ns ? ` xmlns:P${depth}="${escapeXml(ns, true)}"` : ' xmlns=""';
  const inner = (el.elements ?? []).map((c) => elementXml(c, depth + 1)).join('');
  return inner ? `<${tag}${decl}${attrs}>${inner}</${tag}>` : `<${tag}${decl}${attrs}/>`;
}

export function deadPropertyXml(value: DeadProperty['value']): string {
  if (typeof value === 'string') return escapeXml(value);
  if (Array.isArray(value)) return value.map((v) => elementXml(v, 0)).join('');
  return elementXml(value, 0);
}
