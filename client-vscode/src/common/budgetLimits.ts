/**
 * What the status bar shows of the budget: the tightest token limit and, when one applies, the
 * tightest dollar limit (`12.3k / 100k · $12.40 / $50 month`); the tooltip lists every limit in
 * its own unit and period. A limit applies to this editor's calls when it is the total's or the
 * server's user's (an agent's binds only that agent's runs: the tooltip shows it).
 */

import { budgetLevel, budgetTooltip, formatBudget, formatCount, formatTokens, type BudgetLevel } from './format';
import type { BudgetLimit, BudgetSnapshot } from './protocol';

/** `$12.40`, `$50` (compact drops `.00`), `<$0.01`, `$1.2k` from ten thousand up. */
export function formatDollars(dollars: number, compact = false): string {
    if (!Number.isFinite(dollars)) {
        return '∞';
    }
    if (dollars > 0 && dollars < 0.01) {
        return '<$0.01';
    }
    if (dollars >= 10_000) {
        return `$${formatTokens(dollars)}`;
    }
    const text = dollars.toFixed(2).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
    return `$${compact ? text.replace(/\.00$/, '') : text}`;
}

/** Dollars to the cent or, below a cent, to three significant digits: `$0.000435` (the tooltip). */
export function formatDollarsExact(dollars: number): string {
    if (dollars === 0 || Math.abs(dollars) >= 0.01) {
        return formatDollars(dollars);
    }
    return `$${Number(dollars.toPrecision(3))}`;
}

/** The limits that bind this editor's calls: the total's and its user's, in every unit and period. */
export function applicableLimits(snapshot: BudgetSnapshot): BudgetLimit[] {
    return (snapshot.limits ?? []).filter(
        (l) => l.appliesTo === 'total' || (l.appliesTo === 'user' && !!snapshot.user && l.name === snapshot.user),
    );
}

/** Of several limits in one unit, the one with the least left: it stops the next call first. */
function tightest(limits: BudgetLimit[]): BudgetLimit | undefined {
    return [...limits].sort((a, b) => a.remaining - b.remaining || a.limit - b.limit)[0];
}

function amount(limit: BudgetLimit, value: number, compact: boolean): string {
    return limit.unit === 'usd' ? formatDollars(value, compact) : compact ? formatTokens(value) : formatCount(value);
}

/** `$12.40 / $50 month`, `1.2M / 2M week`, `800 / 5k`. */
export function formatLimit(limit: BudgetLimit): string {
    const shown = `${amount(limit, limit.used, limit.unit === 'tokens')} / ${amount(limit, limit.limit, true)}`;
    return limit.period ? `${shown} ${limit.period}` : shown;
}

export interface BudgetStatusView {
    text: string;
    tooltip: string;
    label: string;
    level: BudgetLevel;
}

const ORDER: Record<BudgetLevel, number> = { normal: 0, warning: 1, error: 2 };

/** The status bar item's text, markdown tooltip, accessible label and colour for a snapshot. */
export function budgetStatusView(snapshot: BudgetSnapshot): BudgetStatusView {
    const applying = applicableLimits(snapshot);
    const tokens = tightest(applying.filter((l) => l.unit === 'tokens'));
    const dollars = tightest(applying.filter((l) => l.unit === 'usd'));
    const parts: string[] = [];
    const said: string[] = [];
    // Tokens: the total's limit for all time, unless a token limit with less left is in force;
    // left out when only a dollar limit binds (then dollars are what a developer watches).
    if (tokens && (snapshot.limit === null || tokens.remaining < (snapshot.remaining ?? Infinity))) {
        parts.push(formatLimit(tokens));
        said.push(`${formatLimit(tokens)} tokens`);
    } else if (snapshot.limit !== null || !dollars) {
        parts.push(formatBudget(snapshot.used, snapshot.limit));
        said.push(`${formatBudget(snapshot.used, snapshot.limit)} tokens`);
    }
    if (dollars) {
        parts.push(formatLimit(dollars));
        said.push(`${formatLimit(dollars)} dollars`);
    }
    const levels = [budgetLevel(snapshot.used, snapshot.limit), ...applying.map((l) => budgetLevel(l.used + l.reserved, l.limit))];
    const level = levels.reduce((worst, l) => (ORDER[l] > ORDER[worst] ? l : worst), 'normal' as BudgetLevel);
    return { text: parts.join(' · '), tooltip: budgetTooltipWithLimits(snapshot), label: `agentls budget: ${said.join(', ')}`, level };
}

/** The status tooltip: totals and agents (format.ts), then every other limit in its own unit. */
export function budgetTooltipWithLimits(snapshot: BudgetSnapshot): string {
    const base = budgetTooltip(snapshot);
    const limits = snapshot.limits ?? [];
    if (limits.length === 0) {
        return base;
    }
    const rows = limits.map((l) => {
        const who = l.appliesTo === 'total' ? 'total' : `${l.appliesTo} ${escapeCell(l.name ?? '')}`;
        const mine = l.appliesTo === 'user' && l.name === snapshot.user ? ' (you)' : '';
        const period = l.period ? `per ${l.period} (${l.window ?? ''} UTC)` : 'all time';
        const show = (v: number): string => (l.unit === 'usd' ? formatDollarsExact(v) : formatCount(v));
        return `| ${who}${mine} | ${l.unit === 'usd' ? 'dollars' : 'tokens'} | ${period} | ${show(l.used)} | ${show(l.limit)} | ${show(l.remaining)} |`;
    });
    const table = ['| limit | unit | period | used | of | left |', '|---|---|---|---:|---:|---:|', ...rows].join('\n');
    // The table goes before the closing "Click to show the budget." line.
    const cut = base.lastIndexOf('\n\n');
    return `${base.slice(0, cut)}\n\n${table}${base.slice(cut)}`;
}

/** Names in a markdown table cell: a `|` would split the row, markup would render. */
function escapeCell(text: string): string {
    return text.replace(/[\\`*_{}[\]()#+\-.!|<>]/g, '\\$&');
}

/**
 * A limit as typed in the Set Budget box, checked before it is sent: tokens (`100k`, `1.5M`),
 * dollars (`$50`, `$12.50`) or `none`. The server parses the text itself (core/limits.py);
 * this only spares a round trip for what cannot be a limit. Returns an error sentence or undefined.
 */
export function checkLimitText(input: string): string | undefined {
    const text = input.trim().toLowerCase();
    if (['none', 'unlimited', 'off'].includes(text)) {
        return undefined;
    }
    const number = String.raw`\d[\d_,]*(?:\.\d+)?[km]?`;
    if (new RegExp(`^\\$\\s*${number}$`).test(text) || new RegExp(`^${number}$`).test(text)) {
        return undefined;
    }
    return 'Enter tokens (100k, 1.5M), dollars ($50) or "none".';
}
