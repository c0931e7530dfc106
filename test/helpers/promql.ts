// PromQL read with Prometheus' own grammar (@prometheus-io/lezer-promql): the metric names an
// expression selects, and the operands of its comparisons (what an alert compares).
import { parser } from '@prometheus-io/lezer-promql';
import type { SyntaxNode } from '@lezer/common';

const COMPARISONS = new Set(['Gtr', 'Lss', 'Gte', 'Lte', 'Eql', 'Neq', 'And', 'Or', 'Unless']);

function root(expr: string): SyntaxNode {
  const tree = parser.parse(expr);
  let bad: string | undefined;
  tree.iterate({ enter: (n) => { if (n.type.isError) bad ??= `syntax error at ${n.from} in ${expr}`; } });
  if (bad) throw new Error(bad);
  return tree.topNode.firstChild!;
}

/** Metric names of every vector selector in `expr`. */
export function metricNames(expr: string): string[] {
  const out = new Set<string>();
  const tree = parser.parse(expr);
  tree.iterate({
    enter: (n) => {
      if (n.name !== 'VectorSelector') return;
      const id = n.node.getChild('Identifier');
      if (id) out.add(expr.slice(id.from, id.to));
    },
  });
  return [...out];
}

/**
 * The parts of `expr` that carry values: for `a / b > 0.1 and c == 0`, `a / b` and `c`. An
 * alert's whole expression is empty while it does not fire; these must not be.
 */
export function comparedOperands(expr: string): string[] {
  const out: string[] = [];
  const walk = (n: SyntaxNode): void => {
    if (n.name === 'ParenExpr') { walk(n.firstChild!.nextSibling ?? n.firstChild!); return; }
    if (n.name === 'BinaryExpr') {
      const kids: SyntaxNode[] = [];
      for (let c = n.firstChild; c; c = c.nextSibling) kids.push(c);
      const op = kids.find((k) => COMPARISONS.has(k.name));
      if (op) {
        for (const k of kids) if (k !== op && k.name !== 'BoolModifier' && k.name !== 'MatchingModifierClause' && k.name !== 'NumberDurationLiteral') walk(k);
        return;
      }
    }
    if (n.name !== 'NumberDurationLiteral') out.push(expr.slice(n.from, n.to).trim());
  };
  walk(root(expr));
  return out;
}
