/** Entry point of the agentls extension: wires the server, the status bar, the log and the commands. */

import { workspace, type ExtensionContext } from 'vscode';
import { AuditChannel } from './common/auditChannel';
import { registerCommands } from './common/commands';
import { CONFIG_SECTION } from './common/constants';
import { createLogChannel, traceInfo } from './common/logging';
import { onDidChangePythonInterpreter } from './common/python';
import { ApiKeyStore } from './common/secrets';
import { AgentlsServer } from './common/server';
import { affectsServerSettings, needsRestart } from './common/settings';
import { BudgetStatus } from './common/status';

let server: AgentlsServer | undefined;

export async function activate(context: ExtensionContext): Promise<void> {
    const channel = createLogChannel();
    const status = new BudgetStatus();
    const audit = new AuditChannel(channel);
    const apiKeys = new ApiKeyStore(context);
    server = new AgentlsServer(channel, apiKeys, {
        onEvent: (event) => audit.onEvent(event),
        onOutput: (delta) => audit.onOutput(delta),
        onBudget: (snapshot) => status.update(snapshot),
        onState: (state, detail) => {
            status.setServerState(state, detail);
            if (state !== 'running') {
                audit.reset();
            }
        },
    });
    const current = server;
    context.subscriptions.push(
        channel,
        status,
        current,
        ...registerCommands({ server: current, audit, status, apiKeys }),
        workspace.onDidChangeConfiguration((event) => {
            if (needsRestart(event)) {
                current.scheduleRestart('agentls.python changed');
            } else if (affectsServerSettings(event)) {
                current.notifySettingsChanged();
            }
        }),
        workspace.onDidChangeWorkspaceFolders(() => current.onWorkspaceFoldersChanged()),
        apiKeys.onDidChange(() => current.scheduleRestart('the API key changed')),
        workspace.onDidGrantWorkspaceTrust(() => {
            // Trust reaches the server as a setting; only a workspace interpreter now in force needs a new process.
            const python = workspace.getConfiguration(CONFIG_SECTION).inspect<string>('python');
            if (python?.workspaceValue || python?.workspaceFolderValue) {
                current.scheduleRestart('the workspace is now trusted');
            } else {
                current.notifySettingsChanged();
            }
        }),
    );
    const interpreterListener = await onDidChangePythonInterpreter(() => {
        if (!workspace.getConfiguration('agentls').get<string>('python')) {
            current.scheduleRestart('the Python interpreter changed');
        }
    });
    if (interpreterListener) {
        context.subscriptions.push(interpreterListener);
    }
    traceInfo(`agentls ${(context.extension.packageJSON as { version: string }).version} activated`);
    await current.start();
}

export async function deactivate(): Promise<void> {
    await server?.stop();
    server = undefined;
}
