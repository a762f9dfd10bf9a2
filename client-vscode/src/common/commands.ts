/** The palette commands (category agentls): they ask with QuickPick/InputBox and call the server. */

import { commands, window, workspace, type Disposable, type TextEditor } from 'vscode';
import type { AuditChannel } from './auditChannel';
import { eventLogLine } from './auditLog';
import { Command } from './constants';
import { budgetStatusView, checkLimitText } from './budgetLimits';
import { budgetLines } from './format';
import { errorMessage, showErrorWithLogs, showLogs } from './logging';
import {
    ServerCommand,
    type AgentInfo,
    type AuditEvent,
    type BudgetArgs,
    type BudgetSnapshot,
    type CreateAgentResult,
    type DelegateArgs,
    type ParallelResult,
    type Range,
    type RunResult,
} from './protocol';
import {
    agentItems,
    budgetScopeItems,
    defaultGoal,
    periodItems,
    runItems,
    saveChoiceItems,
    type AgentItem,
    type BudgetScopeItem,
} from './quickPicks';
import { presentCreateAgentResult, presentParallelResult, presentRunResult } from './results';
import type { ApiKeyStore } from './secrets';
import type { AgentlsServer } from './server';
import type { BudgetStatus } from './status';

export interface CommandContext {
    server: AgentlsServer;
    audit: AuditChannel;
    status: BudgetStatus;
    apiKeys: ApiKeyStore;
}

/** A command body; a thrown error becomes one toast with "Show Logs". */
function guarded(body: (...args: unknown[]) => Promise<void>): (...args: unknown[]) => Promise<void> {
    return async (...args) => {
        try {
            await body(...args);
        } catch (error) {
            void showErrorWithLogs(errorMessage(error));
        }
    };
}

function selectionRange(editor: TextEditor): Range | undefined {
    const s = editor.selection;
    if (s.isEmpty) {
        return undefined;
    }
    return {
        start: { line: s.start.line, character: s.start.character },
        end: { line: s.end.line, character: s.end.character },
    };
}

function activeEditor(what: string): TextEditor | undefined {
    const editor = window.activeTextEditor;
    if (!editor) {
        void window.showWarningMessage(`Open a file first: agentls delegates ${what}.`);
    }
    return editor;
}

export function registerCommands(ctx: CommandContext): Disposable[] {
    const { server, audit, status, apiKeys } = ctx;

    const listAgents = () => server.request<AgentInfo[]>(ServerCommand.listAgents);

    async function pickAgent(title: string): Promise<AgentInfo | undefined> {
        const picked = await window.showQuickPick<AgentItem>(listAgents().then(agentItems), {
            title,
            placeHolder: 'Pick an agent',
            matchOnDescription: true,
            matchOnDetail: true,
        });
        return picked?.agent;
    }

    function askGoal(agent: AgentInfo): Thenable<string | undefined> {
        const value = defaultGoal(agent);
        return window.showInputBox({
            title: `Goal for ${agent.name}`,
            prompt: 'What should the agent do? Enter to accept.',
            value,
            valueSelection: [0, value.length],
            ignoreFocusOut: true,
            validateInput: (text) => (text.trim() ? undefined : 'Say what the agent should do.'),
        });
    }

    async function delegate(args: DelegateArgs): Promise<void> {
        presentRunResult(await server.request<RunResult>(ServerCommand.delegate, args));
    }

    async function delegateFromEditor(useSelection: boolean): Promise<void> {
        const editor = activeEditor(useSelection ? 'the selection' : 'the file');
        if (!editor) {
            return;
        }
        const range = useSelection ? selectionRange(editor) : undefined;
        const agent = await pickAgent(range ? 'Delegate the selection to…' : `Delegate ${workspace.asRelativePath(editor.document.uri)} to…`);
        if (!agent) {
            return;
        }
        const goal = await askGoal(agent);
        if (goal === undefined) {
            return;
        }
        await delegate({ agent: agent.name, goal: goal.trim(), uri: editor.document.uri.toString(), range });
    }

    async function delegateParallel(): Promise<void> {
        const editor = window.activeTextEditor;
        const picked = await window.showQuickPick<AgentItem>(listAgents().then(agentItems), {
            title: 'Delegate to several agents at once',
            placeHolder: 'Pick the agents',
            canPickMany: true,
            matchOnDescription: true,
        });
        if (!picked || picked.length === 0) {
            return;
        }
        const goal = await window.showInputBox({
            title: `Goal for ${picked.map((item) => item.agent.name).join(', ')}`,
            prompt: "One goal for every agent; leave empty to give each agent its own default goal.",
            ignoreFocusOut: true,
        });
        if (goal === undefined) {
            return;
        }
        const uri = editor?.document.uri.toString();
        const range = editor ? selectionRange(editor) : undefined;
        const tasks = picked.map(({ agent }) => ({ agent: agent.name, goal: goal.trim() || defaultGoal(agent), uri, range }));
        presentParallelResult(await server.request<ParallelResult>(ServerCommand.delegateParallel, { tasks }));
    }

    async function createAgent(): Promise<void> {
        const prompt = await window.showInputBox({
            title: 'Create an agent from a prompt',
            prompt: 'Describe the agent in a sentence: what it does and how.',
            placeHolder: 'e.g. Finds SQL injection risks and suggests parameterised queries',
            ignoreFocusOut: true,
            validateInput: (text) => (text.trim() ? undefined : 'Describe the agent.'),
        });
        if (!prompt) {
            return;
        }
        const choice = await window.showQuickPick(saveChoiceItems, { title: 'Keep the new agent?' });
        if (!choice) {
            return;
        }
        const editor = window.activeTextEditor;
        const result = await server.request<CreateAgentResult>(ServerCommand.createAgent, {
            prompt: prompt.trim(),
            uri: editor?.document.uri.toString(),
            range: editor ? selectionRange(editor) : undefined,
            save: choice.save,
        });
        presentCreateAgentResult(result);
    }

    async function cancelRun(): Promise<void> {
        const runs = audit.runs.active();
        if (runs.length === 0) {
            void window.showInformationMessage('No agentls run is in progress.');
            return;
        }
        const picked = await window.showQuickPick(runItems(runs), { title: 'Cancel a run', matchOnDescription: true });
        if (!picked) {
            return;
        }
        const answer = await server.request<{ cancelled: string[] }>(
            ServerCommand.cancel,
            picked.runId === undefined ? {} : { runId: picked.runId },
        );
        const n = answer?.cancelled?.length ?? 0;
        void window.showInformationMessage(n === 0 ? 'No run was cancelled: it had already ended.' : `Cancelled ${n} ${n === 1 ? 'run' : 'runs'}.`);
    }

    async function budget(argument: BudgetArgs): Promise<BudgetSnapshot> {
        const snapshot = await server.request<BudgetSnapshot>(ServerCommand.budget, argument);
        if (snapshot && typeof snapshot.used === 'number') {
            status.update(snapshot);
        }
        return snapshot;
    }

    async function pickScope(title: string, users = false): Promise<BudgetScopeItem | undefined> {
        const items = Promise.all([budget({ action: 'get' }), listAgents().catch(() => [] as AgentInfo[])]).then(([snapshot, agents]) =>
            budgetScopeItems(snapshot, agents, { users }),
        );
        return window.showQuickPick(items, { title, placeHolder: users ? 'Total, a user or one agent' : 'Total or one agent' });
    }

    /** Set Budget: whose (total, a user, an agent), how much (tokens or dollars) and for how long. */
    async function setBudget(scope?: BudgetScopeItem): Promise<void> {
        const picked = scope ?? (await pickScope('Set a budget', true));
        if (!picked) {
            return;
        }
        const user = picked.askUser
            ? await window.showInputBox({
                  title: 'Budget of a user',
                  prompt: 'The user name: AGENTLS_USER, else the login name, of whoever runs agentls.',
                  ignoreFocusOut: true,
                  validateInput: (value) => (value.trim() ? undefined : 'Enter a user name.'),
              })
            : picked.user;
        if (picked.askUser && user === undefined) {
            return;
        }
        const whose = user ? `user ${user.trim()}` : (picked.agent ?? 'the total');
        const text = await window.showInputBox({
            title: `Budget of ${whose}`,
            prompt: 'Tokens (100000, 100k, 1.5M) or dollars ($50, $12.50); "none" removes the limit.',
            ignoreFocusOut: true,
            validateInput: checkLimitText,
        });
        if (text === undefined) {
            return;
        }
        const period = await window.showQuickPick(periodItems, { title: `Budget of ${whose}: ${text.trim()}`, placeHolder: 'For how long' });
        if (!period) {
            return;
        }
        const snapshot = await budget({
            action: 'set',
            limit: text.trim(),
            agent: picked.agent,
            ...(user ? { user: user.trim() } : {}),
            ...(period.per ? { per: period.per } : {}),
        });
        const every = period.per ? ` per ${period.per} (UTC)` : '';
        void window.showInformationMessage(`Budget of ${whose} set to ${text.trim()}${every}. Now: ${budgetStatusView(snapshot).text}.`);
    }

    async function showBudget(): Promise<void> {
        const snapshot = await budget({ action: 'get' });
        const items = budgetScopeItems(snapshot).map((item) => ({ ...item, detail: 'Pick to change this budget' }));
        const picked = await window.showQuickPick(items, {
            title: `agentls budget: ${budgetStatusView(snapshot).text}`,
            placeHolder: budgetLines(snapshot)[0],
        });
        if (picked) {
            await setBudget(picked);
        }
    }

    async function resetBudget(): Promise<void> {
        const picked = await pickScope('Reset token usage');
        if (!picked) {
            return;
        }
        await budget({ action: 'reset', agent: picked.agent });
        void window.showInformationMessage(picked.agent ? `Token usage of ${picked.agent} reset.` : 'Token usage reset.');
    }

    async function showAuditLog(filter?: unknown): Promise<void> {
        const query = typeof filter === 'object' && filter !== null ? (filter as { runId?: string; agent?: string }) : {};
        const events = await server.request<AuditEvent[]>(ServerCommand.audit, { ...query, limit: 500 });
        if (!events || events.length === 0) {
            void window.showInformationMessage('The audit log is empty: no agent has run yet.');
            return;
        }
        const lines = events.map((event) => `${event.time} ${eventLogLine(event).message}`);
        const document = await workspace.openTextDocument({ language: 'log', content: `${lines.join('\n')}\n` });
        await window.showTextDocument(document, { preview: true });
    }

    async function setApiKey(): Promise<void> {
        const key = await window.showInputBox({
            title: 'agentls API key',
            prompt: "Kept in VS Code's secret storage and handed to the server at start; leave empty to remove it.",
            password: true,
            ignoreFocusOut: true,
        });
        if (key === undefined) {
            return;
        }
        await apiKeys.set(key.trim() || undefined);
        void window.showInformationMessage(key.trim() ? 'API key saved; the server restarts with it.' : 'API key removed.');
    }

    const handlers: Record<string, (...args: unknown[]) => unknown> = {
        [Command.delegateSelection]: guarded(() => delegateFromEditor(true)),
        [Command.delegateFile]: guarded(() => delegateFromEditor(false)),
        [Command.delegateParallel]: guarded(delegateParallel),
        [Command.createAgent]: guarded(createAgent),
        [Command.cancelRun]: guarded(cancelRun),
        [Command.showBudget]: guarded(showBudget),
        [Command.setBudget]: guarded(() => setBudget()),
        [Command.resetBudget]: guarded(resetBudget),
        [Command.showAuditLog]: guarded(showAuditLog),
        [Command.setApiKey]: guarded(setApiKey),
        [Command.restart]: guarded(() => server.restart('Restart Server command')),
        [Command.showLogs]: () => showLogs(),
    };
    return Object.entries(handlers).map(([id, handler]) => commands.registerCommand(id, handler));
}
