// ESLint 9 flat config: recommended + type-aware rules from typescript-eslint.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
    { ignores: ['dist/**', 'out/**', 'node_modules/**', 'e2e/.code-server/**', 'e2e/artifacts/**', '*.mjs'] },
    js.configs.recommended,
    ...tseslint.configs.recommendedTypeChecked,
    {
        languageOptions: {
            parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
        },
        rules: {
            '@typescript-eslint/no-floating-promises': [
                'error',
                { allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: ['describe', 'test'] }] },
            ],
            '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
            curly: 'error',
            eqeqeq: 'error',
            'no-console': ['error', { allow: ['error'] }],
        },
    },
    {
        files: ['e2e/**/*.ts', 'test/**/*.ts'],
        rules: { 'no-console': 'off' },
    },
);
