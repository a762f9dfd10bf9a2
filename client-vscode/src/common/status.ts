/** The status-bar item: tokens (and dollars, when a dollar limit applies) used / limit, coloured by how close the budget is; click shows the budget. */

import { MarkdownString, StatusBarAlignment, ThemeColor, window, type Disposable, type StatusBarItem } from 'vscode';
import { Command, STATUS_ITEM_ID } from './constants';
import { budgetStatusView } from './budgetLimits';
import type { BudgetSnapshot } from './protocol';

export type ServerState = 'starting' | 'running' | 'stopped' | 'failed';

export class BudgetStatus implements Disposable {
    private readonly item: StatusBarItem;
    private snapshot: BudgetSnapshot | undefined;

    constructor() {
        this.item = window.createStatusBarItem(STATUS_ITEM_ID, StatusBarAlignment.Right, 100);
        this.item.name = 'agentls Budget';
        this.setServerState('starting');
        this.item.show();
    }

    /** The last snapshot the server sent, if any. */
    get current(): BudgetSnapshot | undefined {
        return this.snapshot;
    }

    update(snapshot: BudgetSnapshot): void {
        this.snapshot = snapshot;
        const view = budgetStatusView(snapshot);
        this.item.text = `$(hubot) ${view.text}`;
        this.item.tooltip = new MarkdownString(view.tooltip);
        this.item.accessibilityInformation = { label: view.label };
        const level = view.level;
        this.item.backgroundColor =
            level === 'error'
                ? new ThemeColor('statusBarItem.errorBackground')
                : level === 'warning'
                  ? new ThemeColor('statusBarItem.warningBackground')
                  : undefined;
        this.item.command = Command.showBudget;
    }

    setServerState(state: ServerState, detail?: string): void {
        if (state === 'running' && this.snapshot) {
            this.update(this.snapshot);
            return;
        }
        const icon = { starting: '$(loading~spin)', running: '$(hubot)', stopped: '$(circle-slash)', failed: '$(error)' }[state];
        this.item.text = `${icon} agentls`;
        this.item.tooltip = detail ?? `agentls server: ${state}`;
        this.item.accessibilityInformation = { label: `agentls budget: server ${state}` };
        this.item.backgroundColor = state === 'failed' ? new ThemeColor('statusBarItem.errorBackground') : undefined;
        this.item.command = state === 'failed' || state === 'stopped' ? Command.showLogs : Command.showBudget;
    }

    dispose(): void {
        this.item.dispose();
    }
}
