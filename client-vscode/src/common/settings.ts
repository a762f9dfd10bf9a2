/** Reads the `agentls.*` settings from VS Code, honouring workspace trust. */

import * as os from 'node:os';
import { workspace, type ConfigurationChangeEvent } from 'vscode';
import { CONFIG_SECTION } from './constants';
import type { ServerSettings } from './protocol';
import { buildServerSettings, effectiveValue, restartKeys, substituteVariables, type Variables } from './settingsModel';

export interface ClientSettings {
    /** `agentls.python`, variable-substituted; empty when unset. */
    python: string;
    server: ServerSettings;
    problems: string[];
    workspaceTrusted: boolean;
}

function variables(): Variables {
    return { workspaceFolder: workspace.workspaceFolders?.[0]?.uri.fsPath, userHome: os.homedir() };
}

/** The settings in force for this window; in an untrusted workspace a restricted key keeps the user's value unless the workspace's tightens it. */
export function readSettings(): ClientSettings {
    const trusted = workspace.isTrusted;
    const config = workspace.getConfiguration(CONFIG_SECTION);
    const get = (key: string): unknown => effectiveValue<unknown>(key, config.inspect<unknown>(key), trusted);
    const vars = variables();
    const { settings, problems } = buildServerSettings(get, vars, trusted);
    const python = get('python');
    return {
        python: typeof python === 'string' ? substituteVariables(python.trim(), vars) : '',
        server: settings,
        problems,
        workspaceTrusted: trusted,
    };
}

/** True when the change needs a new server process (the interpreter). */
export function needsRestart(event: ConfigurationChangeEvent): boolean {
    return restartKeys.some((key) => event.affectsConfiguration(`${CONFIG_SECTION}.${key}`));
}

/** True when the server should hear about the change through didChangeConfiguration. */
export function affectsServerSettings(event: ConfigurationChangeEvent): boolean {
    return event.affectsConfiguration(CONFIG_SECTION) && !needsRestart(event);
}

/** Looks up `section` ("agentls" or "agentls.budget.total") in the server settings, for workspace/configuration. */
export function configurationSection(settings: ServerSettings, section: string): unknown {
    if (section === CONFIG_SECTION) {
        return settings;
    }
    let value: unknown = settings;
    for (const part of section.slice(CONFIG_SECTION.length + 1).split('.')) {
        if (typeof value !== 'object' || value === null) {
            return null;
        }
        value = (value as Record<string, unknown>)[part];
    }
    return value ?? null;
}
