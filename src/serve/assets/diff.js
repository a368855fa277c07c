/* diff.js -- a small line diff for the Kitchen's "diff vs previous best":
 * the longest common subsequence of lines (after trimming the common head
 * and tail), shown with a few lines of context around each change.
 * EmileDiff.lines(a, b) -> [{op: " " | "-" | "+", text}], or null when the
 * texts are too large to compare here. */
(function () {
  'use strict';

  var MAX_CELLS = 4000000;   /* lines(a) x lines(b) the table may hold */

  function split(s) {
    var l = (s || '').split('\n');
    if (l.length && l[l.length - 1] === '') l.pop();
    return l;
  }

  function lines(a, b) {
    var A = split(a), B = split(b);
    var head = 0, tail = 0;
    while (head < A.length && head < B.length && A[head] === B[head]) head++;
    while (tail < A.length - head && tail < B.length - head &&
           A[A.length - 1 - tail] === B[B.length - 1 - tail]) tail++;
    var a2 = A.slice(head, A.length - tail), b2 = B.slice(head, B.length - tail);
    var n = a2.length, m = b2.length;
    if (n * m > MAX_CELLS) return null;
    /* lcs[i][j]: common lines of a2[i..] and b2[j..], one flat array. */
    var w = m + 1, lcs = new Uint32Array((n + 1) * w);
    for (var i = n - 1; i >= 0; i--)
      for (var j = m - 1; j >= 0; j--)
        lcs[i * w + j] = a2[i] === b2[j] ? lcs[(i + 1) * w + j + 1] + 1
                                         : Math.max(lcs[(i + 1) * w + j], lcs[i * w + j + 1]);
    var out = [], k;
    for (k = 0; k < head; k++) out.push({op: ' ', text: A[k]});
    i = 0; j = 0;
    while (i < n || j < m) {
      if (i < n && j < m && a2[i] === b2[j]) { out.push({op: ' ', text: a2[i]}); i++; j++; }
      else if (i < n && (j === m || lcs[(i + 1) * w + j] >= lcs[i * w + j + 1])) {
        out.push({op: '-', text: a2[i]}); i++;      /* removals before additions */
      } else { out.push({op: '+', text: b2[j]}); j++; }
    }
    for (k = A.length - tail; k < A.length; k++) out.push({op: ' ', text: A[k]});
    return out;
  }

  /* Fill pre with the diff: changed lines and `context` lines around them;
   * longer unchanged stretches fold into one "... N unchanged lines" line.
   * Text goes in through textContent only. */
  function render(pre, ops, context) {
    if (context === undefined) context = 3;
    while (pre.firstChild) pre.removeChild(pre.firstChild);
    var keep = new Array(ops.length), i, k;
    for (i = 0; i < ops.length; i++) {
      if (ops[i].op === ' ') continue;
      for (k = Math.max(0, i - context); k <= Math.min(ops.length - 1, i + context); k++) keep[k] = true;
    }
    var changes = 0;
    for (i = 0; i < ops.length; i++) {
      if (!keep[i]) {
        var start = i;
        while (i < ops.length && !keep[i]) i++;
        var gap = document.createElement('span');
        gap.className = 'line gap';
        gap.textContent = '   ... ' + (i - start) + ' unchanged line' + (i - start === 1 ? '' : 's');
        pre.appendChild(gap);
        i--;
        continue;
      }
      var span = document.createElement('span');
      span.className = 'line' + (ops[i].op === '+' ? ' add' : ops[i].op === '-' ? ' del' : '');
      span.textContent = ops[i].op + ' ' + ops[i].text;
      if (ops[i].op !== ' ') changes++;
      pre.appendChild(span);
    }
    return changes;
  }

  window.EmileDiff = {lines: lines, render: render};
})();
