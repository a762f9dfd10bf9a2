/** Entry point of the agentls extension: wires the server, the status bar, the log and the commands. */

import { commands, workspace, type ExtensionContext } from 'vscode';
import { AuditChannel } from './common/auditChannel';
import { BundledServer, readImportStrategy } from './common/bundled';
import { registerCommands } from './common/commands';
import { Command, CONFIG_SECTION } from './common/constants';
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
    }, new BundledServer(context));
    const current = server;
    context.subscriptions.push(
        channel,
        status,
        current,
        ...registerCommands({ server: current, audit, status, apiKeys }),
        commands.registerCommand(Command.installLocalModel, () => current.installLocalModel()),
        workspace.onDidChangeConfiguration((event) => {
            if (event.affectsConfiguration(`${CONFIG_SECTION}.importStrategy`)) {
                current.scheduleRestart('agentls.importStrategy changed');
            } else if (needsRestart(event)) {
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
        // The private environment (useBundled) was made once and does not follow the selected interpreter.
        if (!workspace.getConfiguration('agentls').get<string>('python') && readImportStrategy() === 'fromEnvironment') {
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
