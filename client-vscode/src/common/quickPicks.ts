/** Builds the quick-pick items of the palette commands from server data; no vscode import. */

import type { ActiveRun } from './auditLog';
import { formatBudget, formatDuration, sortedAgents } from './format';
import type { AgentInfo, BudgetPeriod, BudgetSnapshot } from './protocol';

/** Structurally a vscode.QuickPickItem. */
export interface PickItem {
    label: string;
    description?: string;
    detail?: string;
    picked?: boolean;
}

export interface AgentItem extends PickItem {
    agent: AgentInfo;
}

const sourceLabels: Record<string, string> = {
    builtin: 'built-in',
    user: 'user folder',
    workspace: 'workspace',
    claude: 'Claude Code agent',
    generated: 'created from a prompt',
};

const modeLabels: Record<string, string> = {
    edit: 'edits the code',
    answer: 'answers',
    tools: 'reads the workspace with tools',
};

/** Where an agent is defined and what it does with the target: `workspace · .agentls/agents/x.yaml · edits the code`. */
export function agentDetail(agent: AgentInfo): string {
    const parts = [sourceLabels[agent.source] ?? agent.source];
    if (agent.path && agent.source !== 'builtin') {
        parts.push(agent.path);
    }
    if (agent.mode) {
        parts.push(modeLabels[agent.mode] ?? agent.mode);
    }
    return parts.join(' · ');
}

/** One row per agent: name, its description, where it is defined. */
export function agentItems(agents: AgentInfo[]): AgentItem[] {
    return agents.map((agent) => ({
        label: agent.name,
        description: agent.description,
        detail: agentDetail(agent),
        agent,
    }));
}

/** The goal an InputBox starts with: the agent's own description of what it does. */
export function defaultGoal(agent: AgentInfo): string {
    return agent.description?.trim() || agent.codeAction?.trim() || `Run ${agent.name}`;
}

export interface RunItem extends PickItem {
    /** undefined: cancel every run. */
    runId: string | undefined;
}

/** "All runs" first, then each run in progress with its goal and age. */
export function runItems(runs: ActiveRun[], now: number = Date.now()): RunItem[] {
    const items: RunItem[] = [
        {
            label: 'All runs',
            description: `${runs.length} in progress`,
            runId: undefined,
        },
    ];
    for (const run of runs) {
        items.push({
            label: run.agent,
            description: run.goal,
            detail: `run ${run.runId} · started ${formatDuration(now - run.startedAt)} ago${run.parentRunId ? ' · child run' : ''}`,
            runId: run.runId,
        });
    }
    return items;
}

export interface BudgetScopeItem extends PickItem {
    /** undefined (and no user): the total budget. */
    agent: string | undefined;
    /** A user's limit (`agentls budget set ... --user NAME`). */
    user?: string;
    /** Ask for the user's name. */
    askUser?: boolean;
}

/**
 * Total first, then (for setting a limit) the server's user and any other user, then every known
 * agent (from the agent list and the snapshot) with its usage.
 */
export function budgetScopeItems(
    snapshot: BudgetSnapshot | undefined,
    agents: AgentInfo[] = [],
    options: { users?: boolean } = {},
): BudgetScopeItem[] {
    const items: BudgetScopeItem[] = [
        {
            label: 'Total',
            description: snapshot ? `${formatBudget(snapshot.used, snapshot.limit)} tokens` : undefined,
            detail: 'All agents together',
            agent: undefined,
        },
    ];
    if (options.users) {
        if (snapshot?.user) {
            items.push({ label: `You (${snapshot.user})`, detail: 'Your own calls, on every machine', agent: undefined, user: snapshot.user });
        }
        items.push({ label: 'A user…', detail: 'Whoever runs with AGENTLS_USER (else the login name) of that name', agent: undefined, askUser: true });
    }
    const seen = new Set<string>();
    for (const [name, budget] of sortedAgents(snapshot?.agents)) {
        seen.add(name);
        items.push({ label: name, description: `${formatBudget(budget.used, budget.limit)} tokens`, agent: name });
    }
    for (const agent of agents) {
        if (!seen.has(agent.name)) {
            seen.add(agent.name);
            items.push({ label: agent.name, description: 'no tokens used yet', agent: agent.name });
        }
    }
    return items;
}

export interface SaveChoiceItem extends PickItem {
    save: boolean;
}

export const saveChoiceItems: SaveChoiceItem[] = [
    { label: 'Run once', description: 'keep the new agent in memory only', save: false },
    { label: 'Run and save', description: "save the definition to the workspace's .agentls/agents/", save: true },
];

export interface PeriodItem extends PickItem {
    per: BudgetPeriod | undefined;
}

/** For how long a limit holds: for all time, or each UTC day, week or month. */
export const periodItems: PeriodItem[] = [
    { label: 'For all time', description: 'until you change it', per: undefined },
    { label: 'Per day', description: 'starts over at 00:00 UTC', per: 'day' },
    { label: 'Per week', description: 'starts over on Monday, 00:00 UTC', per: 'week' },
    { label: 'Per month', description: 'starts over on the 1st, 00:00 UTC', per: 'month' },
];
