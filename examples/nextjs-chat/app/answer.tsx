import type { Fate } from '../lib/verdict';

const NOTES: Record<Fate['kind'], string> = {
  allowed: 'The guard found nothing to act on.',
  flagged: 'Shown as written; the guard reported it.',
  redacted: 'Parts of the answer were masked.',
  rewritten: 'The answer was stopped where it turned unsafe; the guard replaced the rest.',
  stopped: 'The answer was stopped where it turned unsafe.',
  'prompt refused': 'The prompt was refused; the guard answered in its place.',
};

/** One finished answer: its fate and category, the model's text, and the guard's text set apart. */
export function Answer({ fate }: { fate: Fate }) {
  return (
    <>
      <p className="fate" data-testid="fate" data-kind={fate.kind}>
        <span className={`badge ${fate.kind.replace(' ', '-')}`}>{fate.kind}</span>
        {fate.category && <span className="category">{fate.category}</span>}
        <span className="note">{NOTES[fate.kind]}</span>
        {fate.errorCode && <span className="code">guard error: {fate.errorCode}</span>}
      </p>
      {fate.answer && <p className="answer">{fate.answer}</p>}
      {fate.replacement && (
        <blockquote className="replacement" data-testid="replacement">
          <span className="label">from the guard</span>
          {fate.replacement}
        </blockquote>
      )}
    </>
  );
}
