/** Tells the user how a run ended: a toast per outcome, and the answer of answer-mode agents on request. */

import { commands, window, workspace } from 'vscode';
import { Command } from './constants';
import { formatDuration, formatTokens, isNoModelError, runWarningMessages } from './format';
import { showErrorWithLogs, showLogs, traceError } from './logging';
import type { CreateAgentResult, ParallelResult, RunResult } from './protocol';

function isRunResult(value: unknown): value is RunResult {
    return typeof value === 'object' && value !== null && 'runId' in value && 'status' in value;
}

async function openAnswer(result: RunResult): Promise<void> {
    const document = await workspace.openTextDocument({
        language: 'markdown',
        content: `# ${result.agent}\n\n${result.text}\n`,
    });
    await window.showTextDocument(document, { preview: true });
}

function cost(result: RunResult): string {
    return `${formatTokens(result.usage?.total ?? 0)} tokens in ${formatDuration(result.durationMs)}`;
}

/** Shows one run's outcome without waiting for the user. */
export function presentRunResult(result: unknown): void {
    if (!isRunResult(result)) {
        return;
    }
    for (const warning of runWarningMessages(result)) {
        void window.showWarningMessage(warning, 'Show Logs').then((choice) => choice && showLogs());
    }
    switch (result.status) {
        case 'finished': {
            const edits = result.edits?.length ?? 0;
            if (edits > 0) {
                void window.showInformationMessage(
                    `${result.agent} finished: ${edits} ${edits === 1 ? 'edit' : 'edits'} applied (${cost(result)}).`,
                );
            } else if (result.text?.trim()) {
                void window
                    .showInformationMessage(`${result.agent} answered (${cost(result)}).`, 'Show Answer', 'Show Logs')
                    .then((choice) => {
                        if (choice === 'Show Answer') {
                            void openAnswer(result);
                        } else if (choice === 'Show Logs') {
                            showLogs();
                        }
                    });
            } else {
                void window.showInformationMessage(`${result.agent} finished with no changes (${cost(result)}).`);
            }
            break;
        }
        case 'budget_exceeded':
            void window
                .showWarningMessage(
                    `${result.agent} stopped: the token budget is used up${result.error ? ` (${result.error})` : ''}.`,
                    'Set Budget…',
                    'Show Logs',
                )
                .then((choice) => {
                    if (choice === 'Set Budget…') {
                        void commands.executeCommand(Command.setBudget);
                    } else if (choice === 'Show Logs') {
                        showLogs();
                    }
                });
            break;
        case 'cancelled':
            void window.showInformationMessage(`${result.agent} was cancelled.`);
            break;
        default:
            if (isNoModelError(result.error)) {
                offerModelChoices(result.agent, result.error ?? '');
            } else {
                void showErrorWithLogs(`${result.agent} failed: ${result.error ?? 'no reason given'}`);
            }
    }
}

/** The two ways out of "no model": a model server's key, or the local model added to the private environment. */
function offerModelChoices(agent: string, serverMessage: string): void {
    traceError(`${agent} failed: ${serverMessage}`);
    void window
        .showErrorMessage(
            `${agent} failed: no model is configured. Set an API key (and agentls.baseUrl for a server other than OpenAI), ` +
                'or install the local model, a small model that runs on this machine to try agentls with (it compiles for a few minutes).',
            'Set API Key',
            'Install the Local Model',
            'Show Logs',
        )
        .then((choice) => {
            if (choice === 'Set API Key') {
                void commands.executeCommand(Command.setApiKey);
            } else if (choice === 'Install the Local Model') {
                void commands.executeCommand(Command.installLocalModel);
            } else if (choice === 'Show Logs') {
                showLogs();
            }
        });
}

/** One toast for a parallel delegation: how many runs ended how, and the tokens they took. */
export function presentParallelResult(value: unknown): void {
    const result = value as ParallelResult | undefined;
    if (!result?.results) {
        return;
    }
    const counts = new Map<string, number>();
    for (const run of result.results) {
        counts.set(run.status, (counts.get(run.status) ?? 0) + 1);
    }
    const summary = [...counts.entries()].map(([status, n]) => `${n} ${status.replace('_', ' ')}`).join(', ');
    const message = `${result.results.length} agents: ${summary} (${formatTokens(result.usage?.total ?? 0)} tokens in ${formatDuration(result.wallMs)}).`;
    const failed = result.results.filter((run) => run.status === 'failed');
    if (failed.length > 0) {
        void showErrorWithLogs(`${message} ${failed.map((run) => `${run.agent}: ${run.error ?? 'failed'}`).join('; ')}`);
    } else {
        void window.showInformationMessage(message, 'Show Logs').then((choice) => choice && showLogs());
    }
}

export function presentCreateAgentResult(value: unknown): void {
    const created = value as CreateAgentResult | undefined;
    if (!created?.definition) {
        return;
    }
    const saved = created.savedTo ? ` Saved to ${created.savedTo}.` : '';
    void window.showInformationMessage(`Created agent ${created.definition.name}: ${created.definition.description ?? ''}.${saved}`);
    presentRunResult(created.result);
}
