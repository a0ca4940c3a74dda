/**
 * The shape of a directive row, and the three builders the table in directives.ts uses.
 *
 * Public: SECTIONS, Section, Directive, DefaultContext, oneValue(), listValue(), lineListValue(),
 * commandValue().
 *
 * A builder ties a user-visible name to one Config field with type safety (the parser must
 * produce that field's type, the default must be of that type) and returns a plain Directive
 * row that the loader, --check and the renderers use without knowing the types:
 *   - oneValue:     exactly one word (`SMTPPort 25`); not repeatable;
 *   - listValue:    one or more words per line, and the directive may repeat; every word is one
 *                   item; giving the directive at all replaces the default list;
 *   - lineListValue: the directive may repeat; each line (all its words) is one item
 *                   (`RBL zen.example.org 2 listed`);
 *   - commandValue: the rest of the line is a command's argv (`Sendmail /usr/sbin/sendmail -oi`).
 * Defaults that depend on other directives (LocalDomain = Hostname) read them with
 * ctx.resolved(field): the field must come EARLIER in the table (a unit test checks).
 */
import type { Config } from './types.js';
import type { Parsed, ValueForm } from './values.js';

export const SECTIONS = [
  'Listening and limits',
  'TLS',
  'Recipients and users',
  'Privileges and script limits',
  'Delivery of accepted mail',
  'Relay domains',
  'Abuse blocking',
  'DNS',
  'Facts',
  'Logging',
] as const;
export type Section = (typeof SECTIONS)[number];

/** What a default may look at: fields resolved so far, the machine, a way to warn. */
export interface DefaultContext {
  resolved<K extends keyof Config>(field: K): Config[K];
  systemHostname: string;
  warn(message: string): void;
}

export type Arity = 'one' | 'one-or-more' | 'command';

/** Outcome of one directive line: the messages go after `Name: `. */
export interface LineOutcome {
  errors: string[];
  warnings: string[];
}

export interface Directive {
  /** as users write it (matching is case-insensitive) */
  name: string;
  section: Section;
  /** the Config field this directive fills */
  field: keyof Config;
  repeatable: boolean;
  arity: Arity;
  /** the value form (docs explain each form once) */
  form: ValueForm;
  /** the value as the docs show it after the name, e.g. "duration", "reject|normalize" */
  valueSyntax: string;
  /** the default as shown in docs ("25", "Hostname", "none") */
  defaultText: string;
  /** the value on the commented-out line of the sample etc/asmtpd.conf */
  sample: string;
  /** one line of documentation */
  doc: string;
  /** how the default is computed, when it depends on the machine or on other directives */
  defaultNote?: string;
  /** parse this line's value words into the draft (lists append) */
  applyLine(draft: Partial<Config>, values: readonly string[]): LineOutcome;
  /** fill the field when the directive was not given */
  applyDefault(draft: Partial<Config>, ctx: DefaultContext): void;
  /** problems with files the value names (existence, executability), given the final value */
  checkFiles(draft: Partial<Config>): string[];
}

type Docs = Pick<
  Directive,
  'name' | 'section' | 'form' | 'valueSyntax' | 'defaultText' | 'sample' | 'doc' | 'defaultNote'
>;
type DefaultOf<T> = T | ((ctx: DefaultContext) => T);
type ListField = { [K in keyof Config]: Config[K] extends readonly unknown[] ? K : never }[keyof Config];
type ItemOf<K extends ListField> = Config[K] extends readonly (infer I)[] ? I : never;

function resolveDefault<T>(d: DefaultOf<T>, ctx: DefaultContext): T {
  return typeof d === 'function' ? (d as (ctx: DefaultContext) => T)(ctx) : d;
}

function outcomeOf(parsed: Parsed<unknown>, word: string): LineOutcome {
  if (parsed.kind === 'error')
    return { errors: [`bad value ${JSON.stringify(word)}: ${parsed.message}`], warnings: [] };
  return { errors: [], warnings: parsed.warning === undefined ? [] : [parsed.warning] };
}

function makeCheckFiles<K extends keyof Config>(
  field: K,
  check: ((value: Config[K]) => string[]) | undefined,
): (draft: Partial<Config>) => string[] {
  return (draft) => {
    const value = draft[field];
    return check === undefined || value === undefined ? [] : check(value as Config[K]);
  };
}

/** A directive with exactly one value word. */
export function oneValue<K extends keyof Config>(
  field: K,
  row: Docs & {
    parse(word: string): Parsed<Config[K]>;
    default: DefaultOf<Config[K]>;
    checkFiles?: (value: Config[K]) => string[];
  },
): Directive {
  const { parse, default: defaultValue, checkFiles, ...docs } = row;
  return {
    ...docs,
    field,
    repeatable: false,
    arity: 'one',
    applyLine(draft, values) {
      const word = values[0] ?? '';
      const parsed = parse(word);
      if (parsed.kind === 'ok') draft[field] = parsed.value;
      return outcomeOf(parsed, word);
    },
    applyDefault(draft, ctx) {
      draft[field] = resolveDefault(defaultValue, ctx);
    },
    checkFiles: makeCheckFiles(field, checkFiles),
  };
}

/** A repeatable directive whose every value word is one item of a list field. */
export function listValue<K extends ListField>(
  field: K,
  row: Docs & {
    parseItem(word: string): Parsed<ItemOf<K>>;
    default: DefaultOf<Config[K]>;
    checkFiles?: (value: Config[K]) => string[];
  },
): Directive {
  const { parseItem, default: defaultValue, checkFiles, ...docs } = row;
  return {
    ...docs,
    field,
    repeatable: true,
    arity: 'one-or-more',
    applyLine(draft, values) {
      const list = (draft[field] ?? []) as ItemOf<K>[];
      const outcome: LineOutcome = { errors: [], warnings: [] };
      for (const word of values) {
        const parsed = parseItem(word);
        if (parsed.kind === 'ok') list.push(parsed.value);
        const one = outcomeOf(parsed, word);
        outcome.errors.push(...one.errors);
        outcome.warnings.push(...one.warnings);
      }
      (draft as Record<K, ItemOf<K>[]>)[field] = list;
      return outcome;
    },
    applyDefault(draft, ctx) {
      draft[field] = resolveDefault(defaultValue, ctx);
    },
    checkFiles: makeCheckFiles(field, checkFiles),
  };
}

/** A repeatable directive whose every line is one item of a list field. */
export function lineListValue<K extends ListField>(
  field: K,
  row: Docs & {
    parseLine(words: readonly string[]): Parsed<ItemOf<K>>;
    default: DefaultOf<Config[K]>;
    /** lines that merge into an earlier item (HoldDomain): add `item` to `list`, or say why not */
    merge?(list: ItemOf<K>[], item: ItemOf<K>): string | null;
  },
): Directive {
  const { parseLine, default: defaultValue, merge, ...docs } = row;
  return {
    ...docs,
    field,
    repeatable: true,
    arity: 'command',
    applyLine(draft, values) {
      const list = (draft[field] ?? []) as ItemOf<K>[];
      const parsed = parseLine(values);
      let mergeError: string | null = null;
      if (parsed.kind === 'ok') {
        if (merge) mergeError = merge(list, parsed.value);
        else list.push(parsed.value);
      }
      (draft as Record<K, ItemOf<K>[]>)[field] = list;
      if (mergeError !== null) return { errors: [mergeError], warnings: [] };
      return outcomeOf(parsed, values.join(' '));
    },
    applyDefault(draft, ctx) {
      draft[field] = resolveDefault(defaultValue, ctx);
    },
    checkFiles: () => [],
  };
}

/** A directive whose value is the rest of the line, as argv words. */
export function commandValue<K extends keyof Config>(
  field: K,
  row: Docs & {
    parse(words: readonly string[]): Parsed<Config[K]>;
    default: DefaultOf<Config[K]>;
    checkFiles?: (value: Config[K]) => string[];
  },
): Directive {
  const { parse, default: defaultValue, checkFiles, ...docs } = row;
  return {
    ...docs,
    field,
    repeatable: false,
    arity: 'command',
    applyLine(draft, values) {
      const parsed = parse(values);
      if (parsed.kind === 'ok') draft[field] = parsed.value;
      return outcomeOf(parsed, values.join(' '));
    },
    applyDefault(draft, ctx) {
      draft[field] = resolveDefault(defaultValue, ctx);
    },
    checkFiles: makeCheckFiles(field, checkFiles),
  };
}
