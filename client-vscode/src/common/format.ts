/** Formatting of token counts, budgets, durations and usage for the status bar and the log. */

import type { AgentBudget, BudgetSnapshot, RunResult, Usage } from './protocol';

/** Compact token count: `850`, `1.2k`, `12.3k`, `100k`, `1.5M`. */
export function formatTokens(count: number): string {
    if (!Number.isFinite(count)) {
        return '∞';
    }
    const sign = count < 0 ? '-' : '';
    const n = Math.abs(Math.round(count));
    if (n < 1000) {
        return `${sign}${n}`;
    }
    for (const [unit, size] of [
        ['k', 1e3],
        ['M', 1e6],
        ['G', 1e9],
    ] as const) {
        const value = n / size;
        const rounded = value < 100 ? Math.round(value * 10) / 10 : Math.round(value);
        if (rounded < 1000 || unit === 'G') {
            return `${sign}${rounded}${unit}`;
        }
    }
    return `${sign}${n}`;
}

/** Full token count with thousands separators: `12,345`. */
export function formatCount(count: number): string {
    return Math.round(count)
        .toString()
        .replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

/** `12.3k / 100k`, or `12.3k / ∞` when there is no limit. */
export function formatBudget(used: number, limit: number | null | undefined): string {
    return `${formatTokens(used)} / ${limit === null || limit === undefined ? '∞' : formatTokens(limit)}`;
}

export type BudgetLevel = 'normal' | 'warning' | 'error';

/** Warning from 80 % of the limit, error at the limit; no limit is always normal. */
export function budgetLevel(used: number, limit: number | null | undefined): BudgetLevel {
    if (limit === null || limit === undefined) {
        return 'normal';
    }
    if (used >= limit) {
        return 'error';
    }
    return used >= 0.8 * limit ? 'warning' : 'normal';
}

function percent(used: number, limit: number | null | undefined): string {
    if (limit === null || limit === undefined || limit <= 0) {
        return '';
    }
    return ` (${Math.floor((100 * used) / limit)} %)`;
}

/** One line per scope, used by the tooltip and Show Budget. */
export function budgetLines(snapshot: BudgetSnapshot): string[] {
    const lines = [`Total: ${formatBudget(snapshot.used, snapshot.limit)} tokens${percent(snapshot.used, snapshot.limit)}`];
    for (const [name, agent] of sortedAgents(snapshot.agents)) {
        lines.push(`${name}: ${formatBudget(agent.used, agent.limit)}${percent(agent.used, agent.limit)}`);
    }
    return lines;
}

/** Agents by usage, biggest first, then by name. */
export function sortedAgents(agents: Record<string, AgentBudget> | undefined): [string, AgentBudget][] {
    return Object.entries(agents ?? {}).sort(([a, x], [b, y]) => y.used - x.used || a.localeCompare(b));
}

/** Markdown tooltip of the status bar item: totals and a per-agent table. */
export function budgetTooltip(snapshot: BudgetSnapshot): string {
    const parts = [
        `**agentls token budget**: ${formatCount(snapshot.used)} used of ` +
            (snapshot.limit === null ? 'no limit' : `${formatCount(snapshot.limit)}${percent(snapshot.used, snapshot.limit)}`),
    ];
    if (snapshot.reserved) {
        parts.push(`${formatCount(snapshot.reserved)} reserved by running agents`);
    }
    const agents = sortedAgents(snapshot.agents);
    if (agents.length > 0) {
        const rows = agents.map(
            ([name, a]) => `| ${name} | ${formatCount(a.used)} | ${a.limit === null ? '∞' : formatCount(a.limit)} |`,
        );
        parts.push(['| agent | used | limit |', '|---|---:|---:|', ...rows].join('\n'));
    } else {
        parts.push('No agent has used tokens yet.');
    }
    parts.push('Click to show the budget.');
    return parts.join('\n\n');
}

/** `850 ms`, `2.3 s`, `1 min 5 s`. */
export function formatDuration(ms: number | null | undefined): string {
    if (ms === null || ms === undefined || !Number.isFinite(ms)) {
        return '?';
    }
    if (ms < 1000) {
        return `${Math.round(ms)} ms`;
    }
    const seconds = ms / 1000;
    if (seconds < 60) {
        return `${Math.round(seconds * 10) / 10} s`;
    }
    const minutes = Math.floor(seconds / 60);
    return `${minutes} min ${Math.round(seconds - 60 * minutes)} s`;
}

/** `1,234 tokens (input 1,000, cached 200, output 234, reasoning 0)`, marked when estimated. */
export function formatUsage(usage: Partial<Usage> | null | undefined): string {
    if (!usage) {
        return 'no usage reported';
    }
    const total = usage.total ?? (usage.inputTokens ?? 0) + (usage.outputTokens ?? 0);
    const parts = [
        `input ${formatCount(usage.inputTokens ?? 0)}`,
        `cached ${formatCount(usage.cachedInputTokens ?? 0)}`,
        `output ${formatCount(usage.outputTokens ?? 0)}`,
        `reasoning ${formatCount(usage.reasoningTokens ?? 0)}`,
    ];
    return `${formatCount(total)} tokens (${parts.join(', ')})${usage.estimated ? ', estimated' : ''}`;
}

/** One warning toast text per warning a run ended with, naming the agent. */
export function runWarningMessages(result: Pick<RunResult, 'agent' | 'warnings'>): string[] {
    return (result.warnings ?? []).filter((w) => w.trim()).map((w) => `${result.agent}: ${w}`);
}

/** The server's refusal to run without a model (core/model_choice.py), also when the embedded one is missing. */
export function isNoModelError(error: string | null | undefined): boolean {
    return /no model is configured|embedded model is not installed/i.test(error ?? '');
}
