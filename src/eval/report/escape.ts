const ENTITIES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/**
 * Text for HTML and SVG, in element content and in quoted attributes alike. Item text is hostile (a data set
 * can hold `<script>`, `</textarea>`, `" onload=`): every value from data, guard or file names goes through here.
 */
export const escapeHtml = (text: string): string => text.replace(/[&<>"']/g, (c) => ENTITIES[c]);

/** A rate or score as the report shows it (and the tests read it back). */
export const fmtRate = (value: number): string => value.toFixed(4);
