/** Pure settings logic: validating `agentls.*` values, workspace trust, initializationOptions. */

import { databaseUrl } from './databaseUrl';
import type { InitializationOptions, McpServerConfig, ModelPrice, ServerSettings } from './protocol';

/**
 * How an untrusted workspace's own value of a setting may differ from the user's: a repository's
 * files may tighten, never loosen (the server's table: server/agentls/core/settings_scope.py).
 * - `user`: only the user's value counts (it runs programs, sends code elsewhere, or is a limit
 *   stored in the server's ledger, which the client cannot compare against);
 * - `atMost`: a ceiling the workspace may only lower (null: no ceiling);
 * - `atLeast`: a floor or a retention the workspace may only raise (null: keep everything);
 * - `trueOnly` / `falseOnly`: the workspace may only turn it on (confirmations) / off.
 */
export type Restriction = 'user' | 'atMost' | 'atLeast' | 'trueOnly' | 'falseOnly';

export const restrictions: Readonly<Record<string, Restriction>> = {
    python: 'user',
    // Which program runs: a user setting only (its scope is `machine`; bundled.ts reads the user's value).
    importStrategy: 'user',
    model: 'user',
    baseUrl: 'user',
    'budget.total': 'user',
    'budget.perRun': 'atMost',
    'budget.perAgent': 'user',
    'budget.waitSeconds': 'atMost',
    'budget.minOutputTokens': 'atLeast',
    maxParallel: 'atMost',
    maxDepth: 'atMost',
    maxOutputTokens: 'atMost',
    mcpServers: 'user',
    mcpCallTimeout: 'atMost',
    agentFolders: 'user',
    'runCommand.enabled': 'user',
    'runCommand.allow': 'user',
    'runCommand.timeoutSeconds': 'user',
    'runCommand.passEnv': 'user',
    confirmEdits: 'trueOnly',
    allowGeneratedEditTools: 'falseOnly',
    'audit.retentionDays': 'atLeast',
    'telemetry.otlpEndpoint': 'user',
    'telemetry.captureContent': 'falseOnly',
    prices: 'user',
    // libpq would send the user's password to whatever database the URL names.
    databaseUrl: 'user',
};

/**
 * Keys only the user's settings set, trusted workspace or not (their scope is `machine`, which
 * VS Code's own `get` honours; `inspect` still reports a workspace's value, so it is left out here).
 */
export const userSettingsOnly: ReadonlySet<string> = new Set(['databaseUrl']);

/** Settings restricted in an untrusted workspace (package.json's `restrictedConfigurations`). */
export const restrictedSettings: readonly string[] = Object.keys(restrictions);

/** What `WorkspaceConfiguration.inspect` returns for one key, reduced to what we use. */
export interface InspectedValue<T = unknown> {
    defaultValue?: T;
    globalValue?: T;
    workspaceValue?: T;
    workspaceFolderValue?: T;
}

/**
 * The value in force for a key. In an untrusted workspace a restricted key keeps the user's
 * (global) value unless the workspace's tightens it, so a cloned repository cannot pick the
 * interpreter, the model server, MCP commands or agent folders, nor raise a limit.
 */
export function effectiveValue<T>(key: string, inspected: InspectedValue<T> | undefined, trusted: boolean): T | undefined {
    if (!inspected) {
        return undefined;
    }
    const workspace = inspected.workspaceFolderValue ?? inspected.workspaceValue;
    const user = inspected.globalValue ?? inspected.defaultValue;
    if (userSettingsOnly.has(key)) {
        return user;
    }
    const restriction = restrictions[key];
    if (trusted || restriction === undefined || workspace === undefined) {
        return workspace ?? user;
    }
    return tightens(restriction, workspace, user) ? workspace : user;
}

function tightens(restriction: Restriction, workspace: unknown, user: unknown): boolean {
    switch (restriction) {
        case 'atMost':
            return typeof workspace === 'number' && (user === null || user === undefined || (typeof user === 'number' && workspace <= user));
        case 'atLeast':
            return workspace === null || (typeof workspace === 'number' && typeof user === 'number' && workspace >= user);
        case 'trueOnly':
            return workspace === true;
        case 'falseOnly':
            return workspace === false;
        default:
            return false;
    }
}

export interface Variables {
    workspaceFolder?: string;
    userHome?: string;
}

/** Replaces `${workspaceFolder}`, `${userHome}` and a leading `~` in a path-like setting. */
export function substituteVariables(value: string, vars: Variables): string {
    let result = value;
    if (vars.userHome) {
        result = result.replace(/^~(?=$|[/\\])/, vars.userHome).replace(/\$\{userHome\}/g, vars.userHome);
    }
    if (vars.workspaceFolder) {
        result = result.replace(/\$\{workspaceFolder\}/g, vars.workspaceFolder);
    }
    return result;
}

export interface SettingsResult {
    settings: ServerSettings;
    /** One sentence per ignored value, for the log. */
    problems: string[];
}

/** Defaults of the server's settings model (package.json declares the same; a unit test checks). */
export const settingDefaults: ServerSettings = {
    model: null,
    baseUrl: null,
    budget: { total: null, perRun: null, perAgent: {}, waitSeconds: 60, minOutputTokens: 32 },
    maxParallel: 8,
    maxDepth: 2,
    maxOutputTokens: 1024,
    mcpServers: {},
    mcpCallTimeout: 60,
    agentFolders: [],
    runCommand: { enabled: false, allow: [], timeoutSeconds: 120, passEnv: [] },
    confirmEdits: false,
    trustWorkspace: null,
    allowGeneratedEditTools: false,
    audit: { retentionDays: null },
    telemetry: { otlpEndpoint: null, captureContent: false },
    prices: {},
    databaseUrl: null,
};

/** The longest wait or time limit a setting may ask for (the server's `bounds.MAX_SECONDS`). */
export const MAX_SECONDS = 3600;

/**
 * Bounds of the numeric settings, as the server's model declares them (package.json carries
 * the same `minimum`/`maximum`; tests/test_settings_schema.py checks it against the server and a
 * unit test checks this table against package.json).
 */
export const settingBounds: Readonly<Record<string, { minimum: number; maximum?: number }>> = {
    'budget.total': { minimum: 0, maximum: 1e15 },
    'budget.perRun': { minimum: 1, maximum: 1e15 },
    'budget.perAgent': { minimum: 0, maximum: 1e15 },
    'budget.waitSeconds': { minimum: 0, maximum: MAX_SECONDS },
    'budget.minOutputTokens': { minimum: 1, maximum: 1000000 },
    maxParallel: { minimum: 1, maximum: 256 },
    maxDepth: { minimum: 0, maximum: 8 },
    maxOutputTokens: { minimum: 16 },
    'audit.retentionDays': { minimum: 1, maximum: 36500 },
};

function inBounds(key: string, value: number): boolean {
    const bounds = settingBounds[key];
    return value >= bounds.minimum && (bounds.maximum === undefined || value <= bounds.maximum);
}

function describeBounds(key: string): string {
    const { minimum, maximum } = settingBounds[key];
    return maximum === undefined ? `at least ${minimum}` : `from ${minimum} to ${maximum}`;
}

const defaults = settingDefaults;

function isRecord(value: unknown): value is Record<string, unknown> {
    return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Validates raw `agentls.*` values (as `get(key)` returns them) into the server's settings.
 * An invalid value falls back to its default and is reported in `problems`.
 */
export function buildServerSettings(
    get: (key: string) => unknown,
    vars: Variables = {},
    workspaceTrusted: boolean | null = null,
): SettingsResult {
    const problems: string[] = [];
    const invalid = (key: string, expected: string, value: unknown) =>
        problems.push(`agentls.${key} must be ${expected}; ignoring ${JSON.stringify(value)}.`);

    const optionalString = (key: string): string | null => {
        const value = get(key);
        if (value === undefined || value === null || value === '') {
            return null;
        }
        if (typeof value !== 'string') {
            invalid(key, 'a string', value);
            return null;
        }
        return value.trim() || null;
    };
    const limit = (key: string): number | null => {
        const value = get(key);
        if (value === undefined || value === null) {
            return null;
        }
        if (typeof value !== 'number' || !Number.isInteger(value) || !inBounds(key, value)) {
            invalid(key, `a whole number ${describeBounds(key)}, or null`, value);
            return null;
        }
        return value;
    };
    const integer = (key: string, fallback: number): number => {
        const value = get(key);
        if (value === undefined || value === null) {
            return fallback;
        }
        if (typeof value !== 'number' || !Number.isInteger(value) || !inBounds(key, value)) {
            invalid(key, `a whole number ${describeBounds(key)}`, value);
            return fallback;
        }
        return value;
    };
    const flag = (key: string, fallback: boolean): boolean => {
        const value = get(key);
        if (value === undefined || value === null) {
            return fallback;
        }
        if (typeof value !== 'boolean') {
            invalid(key, 'true or false', value);
            return fallback;
        }
        return value;
    };
    const strings = (key: string): string[] => {
        const value = get(key);
        if (value === undefined || value === null) {
            return [];
        }
        if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) {
            invalid(key, 'a list of strings', value);
            return [];
        }
        return value;
    };
    const waitSeconds = (key: string, fallback: number): number => {
        const value = get(key);
        if (value === undefined || value === null) {
            return fallback;
        }
        if (typeof value !== 'number' || !Number.isFinite(value) || !inBounds(key, value)) {
            invalid(key, `a number of seconds ${describeBounds(key)}`, value);
            return fallback;
        }
        return value;
    };
    const seconds = (key: string, fallback: number): number => {
        const value = get(key);
        if (value === undefined || value === null) {
            return fallback;
        }
        if (typeof value !== 'number' || !(value > 0) || value > MAX_SECONDS) {
            invalid(key, `a number of seconds above 0 and at most ${MAX_SECONDS}`, value);
            return fallback;
        }
        return value;
    };

    const perAgent: Record<string, number> = {};
    const rawPerAgent = get('budget.perAgent');
    if (isRecord(rawPerAgent)) {
        for (const [name, value] of Object.entries(rawPerAgent)) {
            if (typeof value === 'number' && Number.isInteger(value) && inBounds('budget.perAgent', value)) {
                perAgent[name] = value;
            } else {
                invalid(`budget.perAgent.${name}`, 'a whole number of tokens', value);
            }
        }
    } else if (rawPerAgent !== undefined && rawPerAgent !== null) {
        invalid('budget.perAgent', 'an object of agent name to tokens', rawPerAgent);
    }

    const mcpServers: Record<string, McpServerConfig> = {};
    const rawMcp = get('mcpServers');
    if (isRecord(rawMcp)) {
        for (const [name, value] of Object.entries(rawMcp)) {
            const server = parseMcpServer(value, vars);
            if (server) {
                mcpServers[name] = server;
            } else {
                invalid(
                    `mcpServers.${name}`,
                    'an object with a "command" string, "args" strings and "env" strings, or a "url" (http/https) and "headers" strings',
                    value,
                );
            }
        }
    } else if (rawMcp !== undefined && rawMcp !== null) {
        invalid('mcpServers', 'an object of server name to {command, args, env} or {url, headers}', rawMcp);
    }

    let mcpCallTimeout = defaults.mcpCallTimeout;
    const rawTimeout = get('mcpCallTimeout');
    if (typeof rawTimeout === 'number' && rawTimeout > 0 && rawTimeout <= MAX_SECONDS) {
        mcpCallTimeout = rawTimeout;
    } else if (rawTimeout !== undefined && rawTimeout !== null) {
        invalid('mcpCallTimeout', `a number of seconds above 0 and at most ${MAX_SECONDS}`, rawTimeout);
    }

    const agentFolders: string[] = [];
    const rawFolders = get('agentFolders');
    if (Array.isArray(rawFolders)) {
        for (const folder of rawFolders) {
            if (typeof folder === 'string' && folder.trim()) {
                agentFolders.push(substituteVariables(folder.trim(), vars));
            } else {
                invalid('agentFolders', 'a list of folder paths', folder);
            }
        }
    } else if (rawFolders !== undefined && rawFolders !== null) {
        invalid('agentFolders', 'a list of folder paths', rawFolders);
    }

    const prices: Record<string, ModelPrice> = {};
    const rawPrices = get('prices');
    if (isRecord(rawPrices)) {
        for (const [name, value] of Object.entries(rawPrices)) {
            const price = parsePrice(value);
            if (price) {
                prices[name] = price;
            } else {
                invalid(
                    `prices.${name}`,
                    `{"input": dollars, "output": dollars, "cachedInput"?: dollars} per million tokens, each from 0 to ${MAX_PRICE}`,
                    value,
                );
            }
        }
    } else if (rawPrices !== undefined && rawPrices !== null) {
        invalid('prices', 'an object of model name to {input, cachedInput, output}', rawPrices);
    }

    return {
        settings: {
            model: optionalString('model'),
            baseUrl: optionalString('baseUrl'),
            budget: {
                total: limit('budget.total'),
                perRun: limit('budget.perRun'),
                perAgent,
                waitSeconds: waitSeconds('budget.waitSeconds', defaults.budget.waitSeconds),
                minOutputTokens: integer('budget.minOutputTokens', defaults.budget.minOutputTokens),
            },
            maxParallel: integer('maxParallel', defaults.maxParallel),
            maxDepth: integer('maxDepth', defaults.maxDepth),
            maxOutputTokens: integer('maxOutputTokens', defaults.maxOutputTokens),
            mcpServers,
            mcpCallTimeout,
            agentFolders,
            runCommand: {
                enabled: flag('runCommand.enabled', defaults.runCommand.enabled),
                allow: strings('runCommand.allow'),
                timeoutSeconds: seconds('runCommand.timeoutSeconds', defaults.runCommand.timeoutSeconds),
                passEnv: strings('runCommand.passEnv'),
            },
            confirmEdits: flag('confirmEdits', defaults.confirmEdits),
            trustWorkspace: workspaceTrusted,
            allowGeneratedEditTools: flag('allowGeneratedEditTools', defaults.allowGeneratedEditTools),
            audit: { retentionDays: limit('audit.retentionDays') },
            telemetry: {
                otlpEndpoint: optionalString('telemetry.otlpEndpoint'),
                captureContent: flag('telemetry.captureContent', defaults.telemetry.captureContent),
            },
            prices,
            databaseUrl: databaseUrl(optionalString('databaseUrl'), problems),
        },
        problems,
    };
}

/** The most a price may be, in dollars per million tokens (the server's `MAX_PRICE`). */
const MAX_PRICE = 1000000;

function isPrice(value: unknown): value is number {
    return typeof value === 'number' && Number.isFinite(value) && value >= 0 && value <= MAX_PRICE;
}

function parsePrice(value: unknown): ModelPrice | undefined {
    if (!isRecord(value) || !isPrice(value.input) || !isPrice(value.output)) {
        return undefined;
    }
    const cached = value.cachedInput ?? null;
    if (cached !== null && !isPrice(cached)) {
        return undefined;
    }
    if (Object.keys(value).some((key) => !['input', 'cachedInput', 'output'].includes(key))) {
        return undefined;
    }
    return { input: value.input, cachedInput: cached, output: value.output };
}

function isStringRecord(value: unknown): value is Record<string, string> {
    return isRecord(value) && Object.values(value).every((v) => typeof v === 'string');
}

function parseMcpServer(value: unknown, vars: Variables): McpServerConfig | undefined {
    if (!isRecord(value)) {
        return undefined;
    }
    if (typeof value.url === 'string' && value.command === undefined) {
        const headers = value.headers ?? {};
        if (!/^https?:\/\//.test(value.url.trim()) || !isStringRecord(headers)) {
            return undefined;
        }
        return { url: value.url.trim(), headers };
    }
    if (typeof value.command !== 'string' || !value.command.trim() || value.url !== undefined) {
        return undefined;
    }
    const args = value.args ?? [];
    const env = value.env ?? {};
    if (!Array.isArray(args) || !args.every((a) => typeof a === 'string')) {
        return undefined;
    }
    if (!isStringRecord(env)) {
        return undefined;
    }
    return {
        command: substituteVariables(value.command.trim(), vars),
        args: args.map((a) => substituteVariables(a, vars)),
        env,
    };
}

/**
 * What the client sends in `initialize`; the API key comes from SecretStorage only.
 * `scopedConfiguration`: the settings this client sends (here and to workspace/configuration)
 * hold a workspace's values only where `effectiveValue` allowed them, so the server takes them
 * as the user's own, VS Code's workspace trust included.
 */
export function buildInitializationOptions(
    settings: ServerSettings,
    apiKey: string | undefined,
    workspaceTrusted: boolean,
): InitializationOptions {
    return {
        settings: { ...settings, apiKey: apiKey && apiKey.length > 0 ? apiKey : null },
        workspaceTrusted,
        scopedConfiguration: true,
    };
}

/** Dotted keys read from the `agentls` section, in the order of package.json. */
export const settingKeys: readonly string[] = [
    'python',
    'importStrategy',
    'model',
    'baseUrl',
    'budget.total',
    'budget.perRun',
    'budget.perAgent',
    'budget.waitSeconds',
    'budget.minOutputTokens',
    'maxParallel',
    'maxDepth',
    'maxOutputTokens',
    'mcpServers',
    'mcpCallTimeout',
    'agentFolders',
    'runCommand.enabled',
    'runCommand.allow',
    'runCommand.timeoutSeconds',
    'runCommand.passEnv',
    'confirmEdits',
    'allowGeneratedEditTools',
    'audit.retentionDays',
    'telemetry.otlpEndpoint',
    'telemetry.captureContent',
    'prices',
    'databaseUrl',
];

/** Keys whose change needs a new server process rather than didChangeConfiguration. */
export const restartKeys: readonly string[] = ['python', 'telemetry.otlpEndpoint', 'telemetry.captureContent', 'databaseUrl'];
