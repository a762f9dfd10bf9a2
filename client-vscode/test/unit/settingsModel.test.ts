import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import {
    buildInitializationOptions,
    buildServerSettings,
    effectiveValue,
    settingBounds,
    settingDefaults,
    settingKeys,
    substituteVariables,
} from '../../src/common/settingsModel';

interface Property {
    default?: unknown;
    minimum?: number;
    maximum?: number;
    additionalProperties?: { minimum?: number; maximum?: number };
}

// package.json is checked against the server's settings model by tests/test_settings_schema.py;
// the client's model is checked against package.json here, so all three agree.
const properties = (
    JSON.parse(readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8')) as {
        contributes: { configuration: { properties: Record<string, Property> } };
    }
).contributes.configuration.properties;

function lookup(settings: unknown, dotted: string): unknown {
    return dotted.split('.').reduce<unknown>((value, part) => (value as Record<string, unknown>)[part], settings);
}

describe('the client settings model agrees with package.json', () => {
    test('reads every contributed setting and nothing else', () => {
        const contributed = Object.keys(properties).map((key) => key.slice('agentls.'.length));
        assert.deepEqual([...settingKeys, 'trace.server'].sort(), contributed.sort());
    });

    test('has the contributed default of every server setting', () => {
        for (const key of settingKeys.filter((k) => k !== 'python' && k !== 'importStrategy')) {
            assert.deepEqual(lookup(settingDefaults, key), properties[`agentls.${key}`].default, key);
        }
    });

    test('enforces the contributed bounds of every whole-number setting', () => {
        const bounded = Object.entries(properties).filter(
            ([, p]) => p.minimum !== undefined || p.additionalProperties?.minimum !== undefined,
        );
        assert.deepEqual(Object.keys(settingBounds).sort(), bounded.map(([key]) => key.slice('agentls.'.length)).sort());
        for (const [key, p] of bounded) {
            const own = settingBounds[key.slice('agentls.'.length)];
            const declared = p.additionalProperties ?? p;
            assert.equal(own.minimum, declared.minimum, key);
            assert.equal(own.maximum, declared.maximum, key);
        }
    });

    test('refuses a value outside the bounds, naming the key', () => {
        const { settings, problems } = buildServerSettings(
            getter({
                maxParallel: 257,
                'budget.perRun': 0,
                'budget.waitSeconds': -1,
                'budget.minOutputTokens': 0,
                maxOutputTokens: 8,
            }),
        );
        assert.equal(settings.maxParallel, 8);
        assert.equal(settings.budget.perRun, null);
        assert.equal(settings.budget.waitSeconds, 60);
        assert.equal(settings.budget.minOutputTokens, 32);
        assert.equal(settings.maxOutputTokens, 1024);
        assert.deepEqual(
            problems.map((p) => p.split(' ')[0]),
            [
                'agentls.budget.perRun',
                'agentls.budget.waitSeconds',
                'agentls.budget.minOutputTokens',
                'agentls.maxParallel',
                'agentls.maxOutputTokens',
            ],
        );
    });
});

function getter(values: Record<string, unknown>): (key: string) => unknown {
    return (key) => values[key];
}

describe('buildServerSettings', () => {
    test('gives the documented defaults when nothing is set', () => {
        const { settings, problems } = buildServerSettings(getter({}));
        assert.deepEqual(settings, {
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
        });
        assert.deepEqual(problems, []);
    });

    test('carries every setting to the server shape', () => {
        const { settings } = buildServerSettings(
            getter({
                model: 'gpt-4.1-mini',
                baseUrl: 'http://127.0.0.1:8000/v1',
                'budget.total': 100_000,
                'budget.perRun': 20_000,
                'budget.perAgent': { review: 5000 },
                'budget.waitSeconds': 5,
                'budget.minOutputTokens': 64,
                maxParallel: 4,
                maxDepth: 1,
                maxOutputTokens: 300,
                allowGeneratedEditTools: true,
                'audit.retentionDays': 30,
                'telemetry.otlpEndpoint': 'http://127.0.0.1:4318',
                'telemetry.captureContent': true,
                mcpServers: {
                    fs: { command: 'node', args: ['server.js', '${workspaceFolder}'] },
                    tracker: { url: 'https://mcp.example.com/mcp', headers: { Authorization: 'Bearer t' } },
                },
                mcpCallTimeout: 120,
                agentFolders: ['~/agents'],
                'runCommand.enabled': true,
                'runCommand.allow': ['python -m pytest **'],
                'runCommand.timeoutSeconds': 30,
                'runCommand.passEnv': ['PYTHONPATH'],
                confirmEdits: true,
                prices: { 'llama3.1:8b': { input: 0.05, cachedInput: 0.025, output: 0.08 }, mine: { input: 1, output: 2 } },
                databaseUrl: 'postgresql://me@db/agentls',
            }),
            { workspaceFolder: '/ws', userHome: '/home/me' },
            true,
        );
        assert.deepEqual(settings, {
            model: 'gpt-4.1-mini',
            baseUrl: 'http://127.0.0.1:8000/v1',
            budget: {
                total: 100_000,
                perRun: 20_000,
                perAgent: { review: 5000 },
                waitSeconds: 5,
                minOutputTokens: 64,
            },
            maxParallel: 4,
            maxDepth: 1,
            maxOutputTokens: 300,
            allowGeneratedEditTools: true,
            audit: { retentionDays: 30 },
            telemetry: { otlpEndpoint: 'http://127.0.0.1:4318', captureContent: true },
            mcpServers: {
                fs: { command: 'node', args: ['server.js', '/ws'], env: {} },
                tracker: { url: 'https://mcp.example.com/mcp', headers: { Authorization: 'Bearer t' } },
            },
            mcpCallTimeout: 120,
            agentFolders: ['/home/me/agents'],
            runCommand: { enabled: true, allow: ['python -m pytest **'], timeoutSeconds: 30, passEnv: ['PYTHONPATH'] },
            confirmEdits: true,
            trustWorkspace: true,
            prices: {
                'llama3.1:8b': { input: 0.05, cachedInput: 0.025, output: 0.08 },
                mine: { input: 1, cachedInput: null, output: 2 },
            },
            databaseUrl: 'postgresql://me@db/agentls',
        });
    });

    test('leaves out a price that is not dollars per million tokens, naming the model', () => {
        const { settings, problems } = buildServerSettings(
            getter({
                prices: {
                    ok: { input: 1, output: 2 },
                    negative: { input: -1, output: 2 },
                    noOutput: { input: 1 },
                    typo: { input: 1, output: 2, cached: 0.5 },
                },
            }),
        );
        assert.deepEqual(settings.prices, { ok: { input: 1, cachedInput: null, output: 2 } });
        assert.deepEqual(
            problems.map((p) => p.split(' must ')[0]),
            ['agentls.prices.negative', 'agentls.prices.noOutput', 'agentls.prices.typo'],
        );
    });

    test('falls back to the defaults for invalid run-command and confirmation values', () => {
        const { settings, problems } = buildServerSettings(
            getter({
                'runCommand.enabled': 'yes',
                'runCommand.allow': ['pytest **', 7],
                'runCommand.timeoutSeconds': 0,
                confirmEdits: 1,
            }),
        );
        assert.deepEqual(settings.runCommand, { enabled: false, allow: [], timeoutSeconds: 120, passEnv: [] });
        assert.equal(settings.confirmEdits, false);
        assert.equal(problems.length, 4);
        assert.ok(problems.some((p) => p.startsWith('agentls.runCommand.allow must be a list of strings')));
    });

    test("sends VS Code's workspace trust as the server's trustWorkspace setting", () => {
        assert.equal(buildServerSettings(getter({}), {}, false).settings.trustWorkspace, false);
        assert.equal(buildServerSettings(getter({}), {}, true).settings.trustWorkspace, true);
    });

    test('falls back to the default for an invalid value and says why', () => {
        const { settings, problems } = buildServerSettings(
            getter({ maxParallel: 0, 'budget.total': -1, mcpServers: { broken: { args: [] } } }),
        );
        assert.equal(settings.maxParallel, 8);
        assert.equal(settings.budget.total, null);
        assert.deepEqual(settings.mcpServers, {});
        assert.equal(problems.length, 3);
        assert.ok(problems.some((p) => p.startsWith('agentls.budget.total must be a whole number')));
    });

    test('rejects an MCP server with both or neither of command and url, keeping the others', () => {
        const { settings, problems } = buildServerSettings(
            getter({
                mcpServers: {
                    both: { command: 'node', url: 'http://127.0.0.1:1/mcp' },
                    ftp: { url: 'ftp://host/mcp' },
                    ok: { url: 'http://127.0.0.1:1/mcp' },
                },
                mcpCallTimeout: 0,
            }),
        );
        assert.deepEqual(settings.mcpServers, { ok: { url: 'http://127.0.0.1:1/mcp', headers: {} } });
        assert.equal(settings.mcpCallTimeout, 60);
        assert.deepEqual(
            problems.map((p) => p.split(' must ')[0]),
            ['agentls.mcpServers.both', 'agentls.mcpServers.ftp', 'agentls.mcpCallTimeout'],
        );
    });

    test('treats an empty model string as unset', () => {
        assert.equal(buildServerSettings(getter({ model: '  ' })).settings.model, null);
    });
});

describe('effectiveValue', () => {
    const inspected = { defaultValue: {}, globalValue: { user: { command: 'a' } }, workspaceValue: { repo: { command: 'b' } } };

    test('lets the workspace win in a trusted workspace', () => {
        assert.deepEqual(effectiveValue('mcpServers', inspected, true), { repo: { command: 'b' } });
    });
    test('ignores the workspace value of a restricted setting in an untrusted workspace', () => {
        assert.deepEqual(effectiveValue('mcpServers', inspected, false), { user: { command: 'a' } });
        assert.equal(effectiveValue('python', { defaultValue: '', workspaceValue: './evil' }, false), '');
    });
    test('ignores a workspace allow-list for commands in an untrusted workspace', () => {
        const allow = { defaultValue: [], globalValue: ['npm test'], workspaceValue: ['sh **'] };
        assert.deepEqual(effectiveValue('runCommand.allow', allow, false), ['npm test']);
        assert.equal(effectiveValue('runCommand.enabled', { defaultValue: false, workspaceValue: true }, false), false);
    });
    test('takes a workspace limit in an untrusted workspace only when it is lower', () => {
        assert.equal(effectiveValue('maxParallel', { defaultValue: 8, workspaceValue: 2 }, false), 2);
        assert.equal(effectiveValue('maxParallel', { defaultValue: 8, globalValue: 4, workspaceValue: 64 }, false), 4);
        assert.equal(effectiveValue('budget.perRun', { defaultValue: null, workspaceValue: 5000 }, false), 5000);
        assert.equal(effectiveValue('budget.perRun', { defaultValue: null, globalValue: 2000, workspaceValue: null }, false), 2000);
    });
    test('never takes a ledger limit, the model or its server from an untrusted workspace', () => {
        // The client cannot see the ledger's limit (`agentls budget set`): only the server may lower it.
        assert.equal(effectiveValue('budget.total', { defaultValue: null, workspaceValue: 1e12 }, false), null);
        assert.equal(effectiveValue('baseUrl', { defaultValue: null, workspaceValue: 'http://evil.example/v1' }, false), null);
        assert.equal(effectiveValue('model', { defaultValue: null, globalValue: 'm', workspaceValue: 'x' }, false), 'm');
    });
    test("never takes prices from an untrusted workspace (a repository pricing its model at 0)", () => {
        const prices = { defaultValue: {}, workspaceValue: { 'gpt-4o': { input: 0, output: 0 } } };
        assert.deepEqual(effectiveValue('prices', prices, false), {});
    });
    test('lets an untrusted workspace turn confirmations on but not off', () => {
        assert.equal(effectiveValue('confirmEdits', { defaultValue: false, workspaceValue: true }, false), true);
        assert.equal(effectiveValue('confirmEdits', { defaultValue: false, globalValue: true, workspaceValue: false }, false), true);
        assert.equal(effectiveValue('allowGeneratedEditTools', { defaultValue: false, workspaceValue: true }, false), false);
    });
    test('lets an untrusted workspace keep its audit trail longer, not shorter', () => {
        assert.equal(effectiveValue('audit.retentionDays', { defaultValue: null, workspaceValue: 1 }, false), null);
        assert.equal(effectiveValue('audit.retentionDays', { defaultValue: null, globalValue: 30, workspaceValue: 90 }, false), 90);
    });
    test('prefers the folder value over the workspace value', () => {
        assert.equal(effectiveValue('model', { workspaceValue: 'a', workspaceFolderValue: 'b' }, true), 'b');
    });
});

describe('substituteVariables', () => {
    test('expands workspace folder, user home and a leading tilde only', () => {
        const vars = { workspaceFolder: '/ws', userHome: '/home/me' };
        assert.equal(substituteVariables('${workspaceFolder}/.venv/bin/python', vars), '/ws/.venv/bin/python');
        assert.equal(substituteVariables('~/x', vars), '/home/me/x');
        assert.equal(substituteVariables('a~/x', vars), 'a~/x');
        assert.equal(substituteVariables('${userHome}/y', vars), '/home/me/y');
    });
});

describe('buildInitializationOptions', () => {
    const { settings } = buildServerSettings(getter({ model: 'm' }));

    test('hands the API key and trust to the server', () => {
        const options = buildInitializationOptions(settings, 'sk-secret', false);
        assert.equal(options.settings.apiKey, 'sk-secret');
        assert.equal(options.settings.model, 'm');
        assert.equal(options.workspaceTrusted, false);
    });
    test('tells the server the settings it sends are already restricted to what the user allowed', () => {
        assert.equal(buildInitializationOptions(settings, undefined, false).scopedConfiguration, true);
    });
    test('sends null when no API key is stored', () => {
        assert.equal(buildInitializationOptions(settings, undefined, true).settings.apiKey, null);
        assert.equal(buildInitializationOptions(settings, '', true).settings.apiKey, null);
    });
});

describe('agentls.databaseUrl', () => {
    test('carries a URL without a password to the server', () => {
        const { settings, problems } = buildServerSettings(getter({ databaseUrl: ' postgresql://alice@db.internal/agentls ' }));
        assert.equal(settings.databaseUrl, 'postgresql://alice@db.internal/agentls');
        assert.deepEqual(problems, []);
        assert.equal(buildServerSettings(getter({ databaseUrl: 'host=db dbname=agentls user=alice' })).settings.databaseUrl, 'host=db dbname=agentls user=alice');
    });

    for (const url of [
        'postgresql://alice:s3cret@db.internal/agentls',
        'postgres://alice:s3cret@db.internal:5432/agentls?sslmode=require',
        'postgresql://alice@db.internal/agentls?sslmode=require&password=s3cret',
        'host=db dbname=agentls user=alice password=s3cret',
        "host=db password = 's3 cret'",
    ]) {
        test(`refuses a password in ${url.replace('s3cret', '…')}, never repeating it`, () => {
            const { settings, problems } = buildServerSettings(getter({ databaseUrl: url }));
            assert.equal(settings.databaseUrl, null, 'the password never reaches the server');
            assert.equal(problems.length, 1);
            assert.match(problems[0], /agentls\.databaseUrl holds a password: keep the password in PGPASSWORD or ~\/\.pgpass/);
            assert.ok(!problems[0].includes('s3'), problems[0]);
        });
    }

    test('is the user\'s alone: no workspace can point it elsewhere', () => {
        const inspected = { defaultValue: null, globalValue: 'postgresql://alice@team/agentls', workspaceValue: 'postgresql://alice@evil.example/x' };
        assert.equal(effectiveValue('databaseUrl', inspected, false), 'postgresql://alice@team/agentls');
        assert.equal(effectiveValue('databaseUrl', inspected, true), 'postgresql://alice@team/agentls', 'nor a trusted one');
    });
});
