import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  {
    ignores: [
      '**/node_modules/**',
      '**/dist/**',
      '**/generated/**',
      '**/__generated__/**',
      '.data/**',
      '.turbo/**',
      'bench/results/**',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      globals: { process: 'readonly', console: 'readonly', Buffer: 'readonly', URL: 'readonly', fetch: 'readonly' },
    },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      // A `${...}` in a plain string is a template literal that lost its backticks (the bench report
      // printed `${NOISY_CPU}` literally).
      'no-template-curly-in-string': 'error',
      // Services never reach into another package's files: only through its package exports.
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['**/subgraphs/*/src/**', '../../subgraphs/**', '**/packages/*/src/**'],
              message: 'Import the package, not its files.',
            },
            { group: ['@food/*/src/**', '@food/*/dist/**'], message: 'Import the package entry, not its internals.' },
          ],
        },
      ],
    },
  },
  {
    files: ['**/*.test.ts', 'e2e/**'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
  {
    files: ['**/*.cjs'],
    languageOptions: {
      sourceType: 'commonjs',
      globals: { global: 'readonly', module: 'writable', require: 'readonly' },
    },
  },
);
