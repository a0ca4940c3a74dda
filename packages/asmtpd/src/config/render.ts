/**
 * Generated documentation, all from the directive table (directives.ts) and the value forms
 * (values.ts): the sample etc/asmtpd.conf, docs/configuration.md and the README reference
 * between `<!-- directives:begin -->` and `<!-- directives:end -->`.
 *
 * Public: renderDirectiveTables(), renderSampleConf(), renderConfigurationDoc(),
 * renderReadmeRegion(), replaceReadmeRegion(readme, region), extractReadmeRegion(readme),
 * GENERATED_FILES (what render-cli.ts writes and the docs-sync test compares).
 * Output is deterministic (no dates, no host names) so the committed files can be compared.
 */
import { SECTIONS, type Directive, type Section } from './directive-kinds.js';
import { DIRECTIVES } from './directives.js';
import { CONFIGURATION_DOC_INTRO, CONFIGURATION_DOC_RULES, SAMPLE_CONF_HEADER } from './render-text.js';
import { VALUE_FORMS } from './values.js';

export const README_BEGIN = '<!-- directives:begin -->';
export const README_END = '<!-- directives:end -->';
const GENERATED_NOTE =
  'generated from packages/asmtpd/src/config/directives.ts by `node packages/asmtpd/dist/config/render-cli.js --write`; do not edit by hand';

function directivesIn(section: Section): Directive[] {
  return DIRECTIVES.filter((d) => d.section === section);
}

function meaningOf(d: Directive): string {
  return d.repeatable ? `${d.doc}; may repeat` : d.doc;
}

function cell(text: string): string {
  return text.replace(/\|/g, '\\|');
}

/** One markdown table per section (`headingLevel` #'s before each section name). */
export function renderDirectiveTables(headingLevel = 3): string {
  const hashes = '#'.repeat(headingLevel);
  return (
    SECTIONS.map((section) => {
      const rows = directivesIn(section).map(
        (d) => `| \`${d.name}\` *${cell(d.valueSyntax)}* | ${cell(d.defaultText)} | ${cell(meaningOf(d))} |`,
      );
      return [`${hashes} ${section}`, '', '| directive | default | meaning |', '|---|---|---|', ...rows].join('\n');
    }).join('\n\n') + '\n'
  );
}

/** Words → lines of at most `width` characters, each starting with `prefix`. */
function wrap(text: string, prefix: string, width = 78): string[] {
  const lines: string[] = [];
  let current = '';
  for (const word of text.split(/\s+/).filter((w) => w !== '')) {
    if (current !== '' && prefix.length + current.length + 1 + word.length > width) {
      lines.push(prefix + current);
      current = word;
    } else {
      current = current === '' ? word : `${current} ${word}`;
    }
  }
  if (current !== '') lines.push(prefix + current);
  return lines;
}

function sampleEntry(d: Directive): string[] {
  const lines = wrap(`${d.name} (${d.valueSyntax}): ${meaningOf(d)}.`, '# ');
  const shownIsDefault = d.sample === d.defaultText;
  const defaultText = d.defaultNote ?? d.defaultText;
  lines.push(...wrap(shownIsDefault ? `Default: ${defaultText}.` : `Default: ${defaultText}. Example:`, '# '));
  lines.push(`#${d.name} ${d.sample}`);
  return lines;
}

/** The sample etc/asmtpd.conf: a syntax header, then every directive commented out. */
export function renderSampleConf(): string {
  const out: string[] = [...SAMPLE_CONF_HEADER];
  for (const section of SECTIONS) {
    out.push('', '', `# ==== ${section} ${'='.repeat(Math.max(4, 70 - section.length))}`);
    for (const d of directivesIn(section)) out.push('', ...sampleEntry(d));
  }
  return out.join('\n') + '\n';
}

/** docs/configuration.md: syntax, value forms, computed defaults, then the tables. */
export function renderConfigurationDoc(): string {
  const forms = Object.entries(VALUE_FORMS).map(([form, text]) => `| ${form} | ${cell(text)} |`);
  const computed = DIRECTIVES.filter((d) => d.defaultNote !== undefined).map(
    (d) => `- \`${d.name}\`: ${d.defaultNote}.`,
  );
  return [
    '# Configuration: asmtpd.conf',
    '',
    `<!-- ${GENERATED_NOTE} -->`,
    '',
    ...CONFIGURATION_DOC_INTRO,
    '',
    ...CONFIGURATION_DOC_RULES,
    '',
    '## Value forms',
    '',
    '| form | written as |',
    '|---|---|',
    ...forms,
    '',
    '## Defaults that are computed',
    '',
    ...computed,
    '',
    '## Directives',
    '',
    renderDirectiveTables(3).trimEnd(),
    '',
  ].join('\n');
}

/** What goes between the README markers (starting and ending with a line break). */
export function renderReadmeRegion(): string {
  return [
    '',
    `<!-- ${GENERATED_NOTE} -->`,
    '',
    'Every directive of `asmtpd.conf` with its default; syntax, value forms and computed defaults are in',
    '[docs/configuration.md](docs/configuration.md), and [etc/asmtpd.conf](etc/asmtpd.conf) lists them all, commented out.',
    '',
    renderDirectiveTables(3).trimEnd(),
    '',
  ].join('\n');
}

function markerOffsets(readme: string): { start: number; end: number } | null {
  const begin = readme.indexOf(README_BEGIN);
  const end = readme.indexOf(README_END);
  if (begin < 0 || end < begin) return null;
  return { start: begin + README_BEGIN.length, end };
}

/** The text between the markers, or null when they are missing. */
export function extractReadmeRegion(readme: string): string | null {
  const at = markerOffsets(readme);
  return at === null ? null : readme.slice(at.start, at.end);
}

/** The README with `region` between the markers; everything else unchanged. */
export function replaceReadmeRegion(readme: string, region: string): string {
  const at = markerOffsets(readme);
  if (at === null) throw new Error(`README: markers ${README_BEGIN} … ${README_END} not found`);
  return readme.slice(0, at.start) + region + readme.slice(at.end);
}

export interface GeneratedFile {
  /** path from the repository root */
  path: string;
  /** the file's expected content, given its current content (null = missing) */
  render(current: string | null): string;
}

export const GENERATED_FILES: readonly GeneratedFile[] = [
  { path: 'etc/asmtpd.conf', render: () => renderSampleConf() },
  { path: 'docs/configuration.md', render: () => renderConfigurationDoc() },
  {
    path: 'README.md',
    render: (current) => replaceReadmeRegion(current ?? `${README_BEGIN}\n${README_END}\n`, renderReadmeRegion()),
  },
];
