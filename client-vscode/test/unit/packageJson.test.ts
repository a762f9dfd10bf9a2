import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { Command } from '../../src/common/constants';
import { restrictedSettings, settingKeys } from '../../src/common/settingsModel';

interface Manifest {
    version: string;
    engines: { vscode: string };
    main: string;
    capabilities: { untrustedWorkspaces: { supported: string; restrictedConfigurations: string[] } };
    contributes: {
        commands: { command: string; title: string; category: string }[];
        menus: Record<string, { command: string; when?: string }[]>;
        configuration: { properties: Record<string, { markdownDescription?: string; scope?: string; enum?: string[]; default?: unknown }> };
    };
}

const manifest = JSON.parse(readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8')) as Manifest;

describe('package.json', () => {
    test('runs on VS Code 1.91 and later', () => {
        assert.equal(manifest.engines.vscode, '^1.91.0');
        assert.equal(manifest.main, './dist/extension.js');
    });

    test('contributes every palette command under the agentls category', () => {
        const contributed = manifest.contributes.commands.map((c) => c.command).sort();
        assert.deepEqual(contributed, Object.values(Command).sort());
        for (const command of manifest.contributes.commands) {
            assert.equal(command.category, 'agentls', command.command);
        }
    });

    test('offers Delegate Selection in the editor context menu on a selection', () => {
        assert.deepEqual(manifest.contributes.menus['editor/context'], [
            { command: Command.delegateSelection, when: 'editorHasSelection', group: '1_modification@90' },
        ]);
    });

    test('documents and scopes every setting', () => {
        const properties = manifest.contributes.configuration.properties;
        for (const key of [...settingKeys, 'trace.server']) {
            const property = properties[`agentls.${key}`];
            assert.ok(property, `agentls.${key} is contributed`);
            assert.ok(property.markdownDescription, `agentls.${key} has a markdownDescription`);
            assert.ok(property.scope, `agentls.${key} has a scope`);
        }
        assert.equal(properties['agentls.python'].scope, 'machine-overridable');
    });

    test('supports untrusted workspaces in a limited way', () => {
        const trust = manifest.capabilities.untrustedWorkspaces;
        assert.equal(trust.supported, 'limited');
        assert.deepEqual(trust.restrictedConfigurations, restrictedSettings.map((key) => `agentls.${key}`));
    });

    test('lets only the user choose which server runs (agentls.importStrategy), the bundled one by default', () => {
        const strategy = manifest.contributes.configuration.properties['agentls.importStrategy'];
        assert.deepEqual(strategy.enum, ['useBundled', 'fromEnvironment']);
        assert.equal(strategy.default, 'useBundled');
        assert.equal(strategy.scope, 'machine');
        assert.ok(manifest.capabilities.untrustedWorkspaces.restrictedConfigurations.includes('agentls.importStrategy'));
    });

    test("has agentls's version, which a .vsix without wheels installs from the package index", () => {
        const pyproject = readFileSync(path.join(__dirname, '..', '..', '..', 'pyproject.toml'), 'utf8');
        assert.equal(/^version = "([^"]+)"$/m.exec(pyproject)?.[1], manifest.version);
    });

    test('packages the wheelhouse when there is one, and nothing else beside the bundle', () => {
        const ignore = readFileSync(path.join(__dirname, '..', '..', '.vscodeignore'), 'utf8').split('\n').filter(Boolean);
        assert.deepEqual(ignore, ['**', '!dist/extension.js', '!package.json', '!README.md', '!LICENSE', '!bundled/wheels/*.whl', '!bundled/wheels/wheelhouse.json']);
    });
});
