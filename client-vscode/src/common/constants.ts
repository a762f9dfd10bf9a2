/** Names shared across the extension: ids of the server, the settings section, commands and secrets. */

export const SERVER_ID = 'agentls';
export const SERVER_NAME = 'agentls';
export const CONFIG_SECTION = 'agentls';
export const OUTPUT_CHANNEL_NAME = 'agentls';
export const API_KEY_SECRET = 'agentls.apiKey';
export const STATUS_ITEM_ID = 'agentls.budget';

/** Palette commands; the server's own ids (agentls.delegate, …) are registered by the language client. */
export const Command = {
    delegateSelection: 'agentls.client.delegateSelection',
    delegateFile: 'agentls.client.delegateFile',
    delegateParallel: 'agentls.client.delegateParallel',
    createAgent: 'agentls.client.createAgent',
    cancelRun: 'agentls.client.cancelRun',
    showBudget: 'agentls.client.showBudget',
    setBudget: 'agentls.client.setBudget',
    resetBudget: 'agentls.client.resetBudget',
    showAuditLog: 'agentls.client.showAuditLog',
    setApiKey: 'agentls.client.setApiKey',
    restart: 'agentls.client.restart',
    showLogs: 'agentls.client.showLogs',
    installLocalModel: 'agentls.client.installLocalModel',
} as const;
